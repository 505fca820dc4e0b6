#!/usr/bin/env python3
"""Detection and false positives of Portcullis against nginx + ModSecurity 3 + OWASP CRS, on the
same corpus records, in one run, on loopback.

  benches/corpus-compare.py [--install] [--paranoia 1] [--crs-pl 1,2] [--sample N] [--seed S]
                            [--workers 4] [--categories] [--bin target/release/portcullis]
                            [--out benches/results/corpus-compare.json] [FILES ...]

It starts the built-in echo backend (`portcullis backend`) as the one origin, and in front of it:
- the gateway under test: `portcullis proxy` with the shipped rules at --paranoia (default 1),
  blocking, and its control, the same proxy with `--no-waf`;
- nginx + ModSecurity + CRS for each level of --crs-pl (default 1; `1,2` runs one nginx per
  level), blocking, anomaly threshold 5, configured as benches/load.py's `modsec` peer, and its
  control, the same nginx without ModSecurity.

Then, for each CRS level k, `portcullis corpus replay` sends FILES (default: every
../shared/corpora/*.jsonl) to the gateway and to ModSecurity, each with its own control (records
a control does not answer 2xx are left out of that side's scores), both with `--pl k`: CRS
records that CRS expects to block only above level k are left out of both sides, so both are
scored on the same requests. --sample N --seed S keeps the replayer's fixed sample of N records
per file (the same records for every run with the same seed).

It prints one table per source (detection and false-positive rate of each side, per CRS level;
with --categories a row per category too) and writes the replayer's summary of each run and a
combined JSON summary under benches/results/ (not committed).

--install puts in nginx, libnginx-mod-http-modsecurity and modsecurity-crs with apt-get when they
are missing (benches/load.py's install()). Every record of the five corpora (79,347) at one CRS
level took about 4 minutes on a 2-core machine (the Portcullis replay 200 s, ModSecurity's 33 s);
--sample 5000 with --crs-pl 1,2 took under 2 minutes.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no benches/__pycache__ left behind by the import below
import load  # noqa: E402  benches/load.py: install(), Proc, nginx_conf(), free_port()

# What the ModSecurity side needs, and how to tell each package is there.
PACKAGES = {
    "nginx": lambda: shutil.which("nginx"),
    "libnginx-mod-http-modsecurity": lambda: os.path.exists(load.NGINX_MODSEC_MODULE),
    "modsecurity-crs": lambda: os.path.isdir(load.CRS_DIR),
}
CRS_THRESHOLD = 5  # CRS's inbound anomaly threshold: one CRITICAL match blocks


class Gateway(load.Proc):
    """A Portcullis proxy listening on 127.0.0.1:0: its address is read from its log line
    `listening main on http://ADDR` (no port picked in advance, so none can be taken meanwhile)."""

    def __init__(self, name, argv):
        self.name, self.tls_port = name, None
        self.log = open(os.path.join(load.WORK, f"{name}.log"), "w")
        env = dict(os.environ, RUST_LOG="portcullis=info,warn")
        self.p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.log,
                                  start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            m = re.search(r"listening main on http://(\S+)", open(self.log.name).read())
            if m:
                self.addr = m.group(1)
                self.port = int(self.addr.rsplit(":", 1)[1])
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start; see {self.log.name}")


def start(procs, cls, *args, **kwargs):
    """Starts a server (load.Proc or Gateway) and adds it to procs first, so that one that does
    not come up is still stopped at exit (their __init__ raises after starting the process)."""
    proc = cls.__new__(cls)
    procs.append(proc)
    proc.__init__(*args, **kwargs)
    return proc


def replay(label, files, url, control, pl, args, summary):
    """Runs `portcullis corpus replay` and returns its report (per source and per category)."""
    argv = [load.BIN, "corpus", "replay", *files, "--url", url, "--control", control,
            "--workers", str(args.workers), "--pl", str(pl), "--summary", summary]
    if args.sample:
        argv += ["--sample", str(args.sample), "--seed", str(args.seed)]
    t0 = time.time()
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{label}: replay failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    print(f"{label:28s} {time.time() - t0:7.1f} s  ({r.stderr.strip()})", file=sys.stderr)
    with open(summary) as f:
        return json.load(f)["report"]


def rate(num, den):
    return "–" if not den else f"{100 * num / den:.2f}% ({num}/{den})"


def cells(s):
    """Detection and false-positive cells of one replayer score (None: no such records)."""
    if s is None:
        return "–", "–"
    return rate(s["tp"], s["n_block"]), rate(s["n_pass"] - s["tn"], s["n_pass"])


def row(name, k, p, m):
    """A table row: Portcullis's score p and ModSecurity's m of one source or category at level k."""
    left_out = lambda s: "–" if s is None else s["control_rejected"] + s["no_response"]
    other = lambda s: "–" if s is None else s["other_status"]
    return (f"| {name} | {k} | {' | '.join(cells(p))} | {' | '.join(cells(m))} | "
            f"{left_out(p)} / {left_out(m)} | {other(p)} / {other(m)} |")


def report(results, levels, args):
    """One markdown table per source: a row per CRS level (and per category with --categories)."""
    sources = sorted({src for lv in results.values() for side in lv.values() for src in side["sources"]})
    lines = [f"Portcullis: shipped rules, paranoia {args.paranoia}, blocking. ModSecurity+CRS: "
             f"anomaly threshold {CRS_THRESHOLD}, blocking, at the CRS level of each row; CRS records "
             f"expected only above that level left out of both. Detection = attacks answered 403; "
             f"FP = benign records answered 403. Left out = control did not answer 2xx, or no answer "
             f"(Portcullis / ModSecurity). Other = scored answers neither 2xx nor 403."
             + (f" Sample: {args.sample} records per file, seed {args.seed}." if args.sample else ""), ""]
    for src in sources:
        lines.append(f"## {src}")
        lines.append("| category | CRS PL | Portcullis detection | Portcullis FP | ModSecurity+CRS detection "
                     "| ModSecurity+CRS FP | left out P / M | other P / M |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for k in levels:
            p, m = (results[k][side]["sources"].get(src) for side in ("portcullis", "modsec_crs"))
            lines.append(row("**all**", k, p, m))
        if args.categories:
            cats = sorted({c for k in levels for side in results[k].values()
                           for c in side["categories"].get(src, {})})
            for c in cats:
                for k in levels:
                    p, m = (results[k][side]["categories"].get(src, {}).get(c) for side in ("portcullis", "modsec_crs"))
                    # A category CRS expects only above this level is empty on both sides: no row.
                    if (p or {}).get("n") or (m or {}).get("n"):
                        lines.append(row(c, k, p, m))
        lines.append("")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="JSONL corpora (default: ../shared/corpora/*.jsonl)")
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--paranoia", type=int, default=1, help="Portcullis's paranoia level (default 1)")
    ap.add_argument("--crs-pl", default="1", help="CRS paranoia levels to compare at, e.g. 1,2 (default 1)")
    ap.add_argument("--sample", type=int, default=0, help="records per file (default: all)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=4, help="parallel connections of each replay")
    ap.add_argument("--categories", action="store_true", help="a row per category too")
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/portcullis"))
    ap.add_argument("--out", default=os.path.join(REPO, "benches/results/corpus-compare.json"))
    args = ap.parse_args()
    args.out = os.path.abspath(args.out)
    levels = [int(k) for k in args.crs_pl.split(",")]
    if any(k not in (1, 2, 3, 4) for k in levels):
        sys.exit("--crs-pl: levels are 1 to 4")
    files = [os.path.abspath(f) for f in args.files] or sorted(
        glob.glob(os.path.join(os.path.dirname(REPO), "shared/corpora/*.jsonl")))
    if not files:
        sys.exit("no corpus files (default: ../shared/corpora/*.jsonl)")
    if args.install:
        missing = [pkg for pkg, present in PACKAGES.items() if not present()]
        if missing:
            load.install(missing)
    missing = [pkg for pkg, present in PACKAGES.items() if not present()]
    if missing:
        sys.exit(f"missing: {' '.join(missing)} (run with --install)")
    load.BIN = os.path.abspath(args.bin)
    if not os.path.exists(load.BIN):
        sys.exit(f"{load.BIN} not found: cargo build --release")

    # load.Proc and load.nginx_conf write their logs and configs under load.WORK.
    load.WORK = tempfile.mkdtemp(prefix="portcullis-corpus-compare-")
    # Stop the servers on SIGTERM too, not only at the end or on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    procs = []
    ok = False
    try:
        origin_port = load.free_port()
        start(procs, load.Proc, "backend", [load.BIN, "backend", "--listen", f"127.0.0.1:{origin_port}"],
              origin_port)
        upstream = f"127.0.0.1:{origin_port}"
        gateway = start(procs, Gateway, "portcullis", [load.BIN, "proxy", "--listen", "127.0.0.1:0", "--upstream",
                                                       upstream, "--paranoia", str(args.paranoia)])
        gateway_control = start(procs, Gateway, "portcullis-control", [load.BIN, "proxy", "--listen", "127.0.0.1:0",
                                                                       "--upstream", upstream, "--no-waf"])
        port = load.free_port()
        nginx = start(procs, load.Proc, "nginx", ["nginx", "-c", load.nginx_conf("nginx", port, None, origin_port)],
                      port)
        modsec = {}
        for k in levels:
            port = load.free_port()
            conf = load.nginx_conf(f"modsec-pl{k}", port, None, origin_port, modsec_pl=k,
                                   modsec_threshold=CRS_THRESHOLD)
            modsec[k] = start(procs, load.Proc, f"modsec-pl{k}", ["nginx", "-c", conf], port)

        # Each CRS level: the gateway, then ModSecurity, on the same records.
        base = os.path.splitext(args.out)[0]
        os.makedirs(os.path.dirname(base), exist_ok=True)
        results, summaries = {}, {}
        for k in levels:
            runs = {"portcullis": (f"http://{gateway.addr}", f"http://{gateway_control.addr}"),
                    "modsec_crs": (f"http://127.0.0.1:{modsec[k].port}", f"http://127.0.0.1:{nginx.port}")}
            for side, (url, control) in runs.items():
                summary = f"{base}-{side.replace('_', '-')}-pl{k}.json"
                results.setdefault(k, {})[side] = replay(f"{side} (records <= PL{k})", files, url, control, k,
                                                         args, summary)
                summaries[f"{side}-pl{k}"] = summary
        report(results, levels, args)
        with open(args.out, "w") as f:
            json.dump({"settings": {**vars(args), "files": files, "crs_levels": levels,
                                    "crs_anomaly_threshold": CRS_THRESHOLD, "summaries": summaries},
                       # CRS level -> side (portcullis, modsec_crs) -> the replayer's report.
                       "results": {str(k): v for k, v in results.items()}}, f, indent=2)
        print(f"summary: {args.out}", file=sys.stderr)
        ok = True
    except RuntimeError as e:
        sys.exit(str(e))
    finally:
        for p in procs:
            p.stop()
        # Logs and configs are kept when something went wrong.
        if ok:
            shutil.rmtree(load.WORK, ignore_errors=True)
        else:
            print(f"logs and configs: {load.WORK}", file=sys.stderr)


if __name__ == "__main__":
    main()
