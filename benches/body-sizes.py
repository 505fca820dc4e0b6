#!/usr/bin/env python3
"""What inspecting a request body costs, by size and kind: the gateway with the WAF (shipped
rules, paranoia 1) against the same gateway with --no-waf, side by side in one run, in front of
one echo backend that answers with the length and MD5 of the body it got (checked on every
request: a body changed on the way is an error, not a figure).

  benches/body-sizes.py [--bin target/release/portcullis] [--requests 20]
                        [--sizes 4096,65536,262144,1000000] [--kinds json,form,text,binary,multipart]

Each request is sent with a Content-Length over one keep-alive connection, one at a time. For
every kind and size it prints the gateway's CPU time per request (from /proc/PID/stat) and the
median latency, for both gateways. A benchmark, not a test: the machine is noisy, so read the
two columns of one run against each other.
"""
import argparse
import hashlib
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from load import free_port, wait_port  # noqa: E402
WORDS = ("order delivery customer invoice shipped parcel address street city payment total "
         "amount notes signed porter morning items confirmed phone front desk weekly report "
         "summary team meeting agenda draft review budget quarter plan").split()


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"%d %s" % (len(data), hashlib.md5(data).hexdigest().encode())
        # One write: a separate write for the body would wait on the delayed ACK.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def log_message(self, *args):
        pass


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def make_body(kind, size, rng):
    """(content type, body bytes) of about `size` bytes."""
    if kind == "json":
        items, n = [], 0
        while n < size:
            item = '{"id":%d,"name":"%s","note":"%s"}' % (len(items), sentence(rng)[:30],
                                                         " ".join(sentence(rng) for _ in range(3)))
            items.append(item)
            n += len(item) + 1
        return "application/json", ('{"items":[' + ",".join(items) + "]}").encode()
    if kind == "form":
        fields, n = [], 0
        while n < size:
            field = "f%d=%s" % (len(fields), "+".join(sentence(rng).split()) * 3)
            fields.append(field)
            n += len(field) + 1
        return "application/x-www-form-urlencoded", "&".join(fields).encode()
    if kind == "text":
        out, n = [], 0
        while n < size:
            s = sentence(rng)
            out.append(s)
            n += len(s) + 1
        return "text/plain", "\n".join(out).encode()
    if kind == "binary":
        return "application/octet-stream", rng.randbytes(size)
    if kind == "multipart":
        head = (b'--XB\r\nContent-Disposition: form-data; name="title"\r\n\r\nHoliday\r\n'
                b'--XB\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n'
                b"Content-Type: image/png\r\n\r\n")
        return "multipart/form-data; boundary=XB", head + rng.randbytes(size) + b"\r\n--XB--\r\n"
    sys.exit(f"unknown kind {kind}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(port, pid, content_type, body, requests):
    want = b"%d %s" % (len(body), hashlib.md5(body).hexdigest().encode())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies, statuses = [], {}
    cpu0 = cpu_seconds(pid)
    for _ in range(requests):
        t0 = time.perf_counter()
        conn.request("POST", "/import", body=body, headers={"Content-Type": content_type})
        r = conn.getresponse()
        got = r.read()
        latencies.append(time.perf_counter() - t0)
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status == 200 and got != want:
            sys.exit(f"the backend got a different body: {got!r}, want {want!r}")
        if r.status != 200:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cpu = cpu_seconds(pid) - cpu0
    latencies.sort()
    return cpu / requests * 1000, latencies[len(latencies) // 2] * 1000, statuses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/portcullis"))
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--sizes", default="4096,65536,262144,1000000")
    ap.add_argument("--kinds", default="json,form,text,binary,multipart")
    args = ap.parse_args()

    backend_port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", backend_port), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gateways = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("waf", []), ("no-waf", ["--no-waf"])):
            port = free_port()
            log = open(os.path.join(tmp, f"{name}.log"), "w")
            proc = subprocess.Popen([args.bin, "proxy", "--listen", f"127.0.0.1:{port}",
                                     "--upstream", f"127.0.0.1:{backend_port}", *extra],
                                    stdout=log, stderr=log)
            if not wait_port(port):
                sys.exit(f"the {name} gateway did not start; see {log.name}")
            gateways[name] = (port, proc)
        try:
            rng = random.Random(7)
            print("| kind | size | WAF: CPU ms/req | WAF: median ms | no WAF: CPU ms/req"
                  " | no WAF: median ms | WAF answers |")
            print("|---|---|---|---|---|---|---|")
            for kind in args.kinds.split(","):
                for size in (int(s) for s in args.sizes.split(",")):
                    content_type, body = make_body(kind, size, rng)
                    row = {}
                    for name, (port, proc) in gateways.items():
                        run(port, proc.pid, content_type, body, 2)  # warm the connection
                        row[name] = run(port, proc.pid, content_type, body, args.requests)
                    w, n = row["waf"], row["no-waf"]
                    answers = ", ".join(f"{k}: {v}" for k, v in sorted(w[2].items()))
                    print(f"| {kind} | {len(body):,} | {w[0]:.2f} | {w[1]:.2f} | {n[0]:.2f}"
                          f" | {n[1]:.2f} | {answers} |", flush=True)
        finally:
            for _, proc in gateways.values():
                proc.terminate()
                proc.wait()
            server.shutdown()


if __name__ == "__main__":
    main()
