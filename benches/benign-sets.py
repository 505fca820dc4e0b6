#!/usr/bin/env python3
"""Writes two sets of legitimate requests, in the ../shared/corpora JSONL format, for measuring
false positives on ordinary traffic beside the public corpora:

  prose.jsonl  4,000 paragraphs of English technical prose (the READMEs and NEWS files under
               /usr/share/doc, crate READMEs in the local cargo registry, Python's own help
               topics), each sent once as a search query, a form comment, a JSON note or a cookie.
  api.jsonl    960 API-style requests: searches that brush against attack words ("select a plan",
               "union station", "O'Brien family tree", "sleep(8) hours"), bearer tokens and
               cookies, login redirects, CSV uploads, static assets, GraphQL queries.

The prose comes from this machine's files, so the exact set differs between machines; the seed
is fixed, so one machine always writes the same set. Every record is expect=pass.

  benches/benign-sets.py OUTDIR
  target/release/portcullis corpus eval --rules rules OUTDIR/prose.jsonl OUTDIR/api.jsonl --show fp
"""
import base64
import glob
import gzip
import json
import os
import random
import re
import sys
import urllib.parse
import uuid

BROWSER = [
    ["User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"],
    ["Accept", "text/html,application/xhtml+xml,*/*;q=0.8"],
    ["Accept-Language", "en-US,en;q=0.9"],
]
API = [
    ["User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"],
    ["Accept", "application/json"],
    ["Accept-Language", "en-GB,en;q=0.8"],
]
FORM = ["Content-Type", "application/x-www-form-urlencoded"]
JSON = ["Content-Type", "application/json"]


def read(path):
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rt", errors="replace").read()
        return open(path, errors="replace").read()
    except OSError:
        return ""


def paragraphs(text, min_alpha):
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(line.strip() for line in para.splitlines())
        if 30 <= len(para) <= 400 and sum(c.isalpha() for c in para) >= min_alpha * len(para):
            yield para


def prose(rng):
    files = sorted(glob.glob("/usr/share/doc/*/README*") + glob.glob("/usr/share/doc/*/NEWS*"))
    files += sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/*/README.md")))[:400]
    found = set()
    for f in files:
        found.update(p for p in paragraphs(read(f), 0.6) if not p.startswith(("[", "|", "#", "-", "*", "<", "!")))
    try:
        import pydoc_data.topics as topics

        for text in topics.topics.values():
            found.update(paragraphs(text, 0.7))
    except ImportError:
        pass
    found = sorted(found)
    rng.shuffle(found)
    for i, s in enumerate(found[:4000]):
        rec = {"id": f"prose/{i}", "source": "prose", "expect": "pass"}
        kind = i % 4
        if kind == 0:
            rec.update(category="query", method="GET", target="/search?q=" + urllib.parse.quote_plus(s), headers=BROWSER, body="")
        elif kind == 1:
            rec.update(category="form", method="POST", target="/comments", headers=BROWSER + [FORM],
                       body=urllib.parse.urlencode({"name": "Sam", "comment": s}))
        elif kind == 2:
            rec.update(category="json", method="POST", target="/api/notes", headers=BROWSER + [JSON],
                       body=json.dumps({"note": {"title": s[:40], "text": s, "tags": ["docs"]}}))
        else:
            rec.update(category="cookie", method="GET", target="/",
                       headers=BROWSER + [["Cookie", "draft=" + urllib.parse.quote(s[:200])]], body="")
        yield rec


SEARCHES = [
    "select a plan", "union station chicago", "drop down menu css", "how to delete my account", "insert coin arcade",
    "O'Brien family tree", "rock 'n' roll", "1=1 math puzzle", "where is the nearest store", "order by price",
    "from paris to rome", "script writing course", "alert settings", "the onload event explained",
    "exec summary template", "sleep(8) hours", "cat food", "ls river", "ping pong table", "wget vs curl",
    "php developer jobs", "java 21 records", "etc and so on", "windows system32 folder", "select * from users tutorial",
    "or else", "and/or", "if-then-else", "C:\\Users\\sam\\Documents", "~/projects/app", "../ relative paths",
    "null and void", "char(10) newline", "bash scripting guide", "<3 love", "5 > 3", "price < 100", "tom & jerry",
    "50% off", "#hashtag", "email me at sam@example.com", "https://example.com/page?a=1", "benchmark results",
    "waitfor the weekend", "having fun", "group by age", "case when", "the system() call in C",
    "document.write alternatives", "eval pricing", "base64 encoder online", "user-agent string",
    "SELECT button on controller", "Robert'); a school story", "it's 5 o'clock", "\"quoted phrase\"", "rm -rf meaning",
    "chmod 755", "/etc/hosts file windows", "javascript: the good parts", "vbscript tutorial", "onmouseover tooltip",
    "iframe embed youtube", "xml to json", "ldap login", "mongodb $gt operator", "{{ mustache }} templates",
    "${HOME} variable", "log4j vulnerability news", "jndi explained",
]


def api(rng):
    n = 0

    def rec(kind, **kw):
        nonlocal n
        r = {"id": f"api/{n}", "source": "api", "expect": "pass", "category": kind}
        r.update(kw)
        n += 1
        return r

    for q in SEARCHES:
        yield rec("search", method="GET", target="/search?q=" + urllib.parse.quote_plus(q) + "&page=2&sort=relevance",
                  headers=API, body="")
        yield rec("json-search", method="POST", target="/api/search", headers=API + [JSON],
                  body=json.dumps({"query": q, "filters": {"in_stock": True, "price": {"min": 10, "max": 200}}, "limit": 20}))
        yield rec("form", method="POST", target="/feedback", headers=API + [FORM],
                  body=urllib.parse.urlencode({"subject": q, "message": f"Hi, I searched for {q} and found nothing. Thanks!", "rating": "4"}))
    b64 = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")
    for i in range(150):
        user = uuid.UUID(int=rng.getrandbits(128))
        token = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({"sub": str(uuid.UUID(int=rng.getrandbits(128))), "iat": 1700000000 + i}) + ".sig" + str(i)
        cookie = f"sid={rng.getrandbits(64):x}; theme=dark; _ga=GA1.2.{rng.getrandbits(30)}.{1700000000 + i}"
        yield rec("auth", method="GET", target=f"/api/v1/users/{user}/orders?from=2024-01-01T00:00:00Z&to=2024-02-01&fields=id,total,status",
                  headers=API + [["Authorization", "Bearer " + token], ["Cookie", cookie]], body="")
        nxt = rng.choice(["/account", "/cart?step=2", "/docs/getting-started#install", "https://shop.example.com/checkout"])
        yield rec("redirect", method="GET", target="/login?next=" + urllib.parse.quote(nxt),
                  headers=API + [["Referer", f"https://www.example.com/products/item-{i}.html"]], body="")
        yield rec("upload", method="POST", target="/upload", headers=API + [["Content-Type", f"multipart/form-data; boundary=XyZ{i}"]],
                  body=f"--XyZ{i}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"report-{i}.v2.final.csv\"\r\n"
                       f"Content-Type: text/csv\r\n\r\nid,name,amount\r\n1,O'Brien,10.5\r\n2,\"Smith, J\",7\r\n"
                       f"--XyZ{i}\r\nContent-Disposition: form-data; name=\"desc\"\r\n\r\nQ{i % 4 + 1} numbers (draft) - see notes.txt\r\n--XyZ{i}--\r\n")
        asset = rng.choice(["/static/js/app.3f2a1b.min.js", "/assets/img/logo@2x.png", "/fonts/inter-var.woff2?v=3.19",
                            "/docs/v1.2.3/api/index.html", "/.well-known/security.txt", "/favicon.ico"])
        yield rec("static", method="GET", target=asset, headers=API, body="")
        yield rec("graphql", method="POST", target="/graphql", headers=API + [JSON],
                  body=json.dumps({"query": "query GetUser($id: ID!) { user(id: $id) { id name email orders(first: 10) { edges { node { id total } } } } }",
                                   "variables": {"id": str(i)}}))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, gen, seed in (("prose", prose, 7), ("api", api, 11)):
        path = os.path.join(out, name + ".jsonl")
        with open(path, "w") as f:
            count = sum(f.write(json.dumps(r) + "\n") > 0 for r in gen(random.Random(seed)))
        print(f"{path}: {count} records")


if __name__ == "__main__":
    main()
