#!/usr/bin/env python3
"""Changes under load: does a running Portcullis lose requests while it is reconfigured or replaced?

  benches/change-under-load.py reload  [--reloads 100] [--bin target/release/portcullis]
  benches/change-under-load.py upgrade [--upgrades 3]  [--bin target/release/portcullis]

reload:  wrk drives HTTP and HTTPS load (API key, WAF, rate-limit policy all on) while the script
         makes --reloads changes, cycling through the config file, a rule file, the keys file and
         the certificate pair, each followed by SIGHUP, and checks every reload was taken.
upgrade: wrk drives HTTP load while the script performs --upgrades graceful upgrades: a new
         process started with `run --upgrade` takes the listening sockets from the old one, which
         gets SIGQUIT and finishes its in-flight requests.

Both print wrk's totals (requests, non-2xx answers, socket errors) and exit 1 when any request
failed. This takes minutes and is a benchmark-style check, not part of CI.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KEY = "pc_change_" + "k" * 40


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def metric(admin_port, sample):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def rules_file(variant):
    return f"""category: local
rules:
  - id: 990{variant % 10}00
    description: local rule, variant {variant}
    targets: [args]
    operator: {{ regex: 'changeload{variant}probe' }}
"""


def keys_file(bin_, extra):
    digest = subprocess.run([bin_, "keys", "hash"], input=KEY, capture_output=True, text=True,
                            check=True).stdout.strip()
    text = f'keys:\n  - {{ id: load, digest: "{digest}" }}\n'
    if extra:
        other = subprocess.run([bin_, "keys", "hash"], input=f"pc_other_{extra:040d}", capture_output=True,
                               text=True, check=True).stdout.strip()
        text += f'  - {{ id: other{extra}, digest: "{other}" }}\n'
    return text


def gateway_yaml(d, port, tls_port, admin_port, origin_port, variant):
    return f"""server:
  threads: 2
  upgrade_sock: {d}/upgrade.sock
  pid_file: {d}/portcullis.pid
  grace_period: 1s
  graceful_shutdown_timeout: 10s
listeners:
  - {{ name: main, address: "127.0.0.1:{port}" }}
  - name: tls
    address: "127.0.0.1:{tls_port}"
    tls: {{ certificates: [{{ cert: cert.pem, key: key.pem }}] }}
admin: {{ address: "127.0.0.1:{admin_port}" }}
reload: {{ watch: false }}
access_log: {{ path: access.log }}
trusted_proxies: ["10.{variant % 250}.0.0/16"]
upstreams:
  origin: {{ backends: ["127.0.0.1:{origin_port}"] }}
routes:
  - {{ name: app, upstream: origin, auth: api_key }}
waf: {{ rules: [builtin, local.yaml], paranoia: 1, mode: block }}
api_keys: {{ file: keys.yaml }}
rate_limits:
  policies:
    - {{ name: per-client, rate: 1000000, per: 1s, key: [client_ip] }}
"""


def self_signed(bin_, d):
    subprocess.run([bin_, "certs", "self-signed", "--name", "127.0.0.1", "--name", "localhost",
                    "--cert", os.path.join(d, "cert.pem.new"), "--key", os.path.join(d, "key.pem.new")],
                   check=True, stdout=subprocess.DEVNULL)
    os.replace(os.path.join(d, "key.pem.new"), os.path.join(d, "key.pem"))
    os.replace(os.path.join(d, "cert.pem.new"), os.path.join(d, "cert.pem"))


def wrk(url, seconds, results, name):
    script = os.path.join(tempfile.gettempdir(), "portcullis-change-load.lua")
    with open(script, "w") as f:
        f.write(f'wrk.headers["X-API-Key"] = "{KEY}"\n'
                'wrk.path = "/items?q=blue+shoes&page=2"\n')
    out = subprocess.run(["wrk", "-t1", "-c20", f"-d{seconds}s", "-s", script, url], capture_output=True,
                         text=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1)) if re.search(r"(\d+) requests in", out) else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    results[name] = {
        "requests": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "raw": out,
    }


def start(bin_, conf, d, upgrade=False):
    argv = [bin_, "run", "--config", conf] + (["--upgrade"] if upgrade else [])
    log = open(os.path.join(d, "gateway.log"), "a")
    return subprocess.Popen(argv, cwd=d, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, RUST_LOG="portcullis=info,warn"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["reload", "upgrade"])
    ap.add_argument("--reloads", type=int, default=100)
    ap.add_argument("--upgrades", type=int, default=3)
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/portcullis"))
    args = ap.parse_args()
    bin_ = os.path.abspath(args.bin)
    d = tempfile.mkdtemp(prefix="portcullis-change-")
    origin_port, port, tls_port, admin_port = free_port(), free_port(), free_port(), free_port()
    origin = subprocess.Popen([bin_, "backend", "--listen", f"127.0.0.1:{origin_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = [origin]
    try:
        self_signed(bin_, d)
        write(os.path.join(d, "local.yaml"), rules_file(0))
        write(os.path.join(d, "keys.yaml"), keys_file(bin_, 0))
        conf = os.path.join(d, "gateway.yaml")
        write(conf, gateway_yaml(d, port, tls_port, admin_port, origin_port, 0))
        gw = start(bin_, conf, d)
        procs.append(gw)
        if not (wait_port(origin_port) and wait_port(port) and wait_port(admin_port)):
            sys.exit(f"the gateway did not start; see {d}/gateway.log")
        results = {}
        if args.mode == "reload":
            seconds = int(args.reloads * 1.5) + 15
            loads = [threading.Thread(target=wrk, args=(f"http://127.0.0.1:{port}", seconds, results, "http")),
                     threading.Thread(target=wrk, args=(f"https://127.0.0.1:{tls_port}", seconds, results, "https"))]
            for t in loads:
                t.start()
            time.sleep(2)
            before = metric(admin_port, 'portcullis_config_reloads_total{result="success"}')
            for i in range(1, args.reloads + 1):
                what = ["config", "rules", "keys", "certificate"][i % 4]
                if what == "config":
                    write(conf, gateway_yaml(d, port, tls_port, admin_port, origin_port, i))
                elif what == "rules":
                    write(os.path.join(d, "local.yaml"), rules_file(i))
                elif what == "keys":
                    write(os.path.join(d, "keys.yaml"), keys_file(bin_, i))
                else:
                    self_signed(bin_, d)
                want = metric(admin_port, 'portcullis_config_reloads_total{result="success"}') + 1
                gw.send_signal(signal.SIGHUP)
                # One change at a time: wait until this reload is in (a reload compiles the rules).
                deadline = time.time() + 20
                while time.time() < deadline and metric(admin_port,
                                                        'portcullis_config_reloads_total{result="success"}') < want:
                    time.sleep(0.05)
            taken = metric(admin_port, 'portcullis_config_reloads_total{result="success"}') - before
            failed = metric(admin_port, 'portcullis_config_reloads_total{result="failure"}')
            for t in loads:
                t.join()
            print(f"reloads sent: {args.reloads}, taken: {taken:.0f}, refused: {failed:.0f}")
            ok = taken >= args.reloads and failed == 0
        else:
            seconds = 8 * args.upgrades + 6
            load = threading.Thread(target=wrk, args=(f"http://127.0.0.1:{port}", seconds, results, "http"))
            load.start()
            time.sleep(3)
            for i in range(args.upgrades):
                new = start(bin_, conf, d, upgrade=True)
                procs.append(new)
                time.sleep(1.5)  # the new process waits on the upgrade socket
                gw.send_signal(signal.SIGQUIT)
                gw.wait(timeout=30)
                gw = new
                time.sleep(6)
            load.join()
            alive = gw.poll() is None
            print(f"upgrades: {args.upgrades}, last process serving: {alive}")
            ok = alive
        for name, r in results.items():
            print(f"{name}: {r['requests']} requests, {r['non2xx']} non-2xx, {r['socket_errors']} socket errors")
            ok = ok and r["requests"] > 0 and r["non2xx"] == 0 and r["socket_errors"] == 0
        print("no request lost" if ok else f"FAILED; logs in {d}")
        sys.exit(0 if ok else 1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
