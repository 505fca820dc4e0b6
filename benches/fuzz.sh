#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets) for a while each; not part of CI (it takes time).
#
#   benches/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]     default: 300 s, every target
#
# Targets: rules (rule-file parser and compiler), transforms (transform chains), inspect (the
# WAF over arbitrary requests), config (config parser and compiler), decode (compressed request
# bodies decoded for inspection). Seeds come from the repository (rules/, configs, fixed
# requests) and, for inspect, from ../shared/corpora when present. A crash leaves its input in
# fuzz/artifacts/<target>/; copy it to fuzz/regressions/<target>/ once fixed, and
# `cargo test --test fuzz_regressions` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rules transforms inspect config decode)

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
# This machine's toolchain is stable; cargo-fuzz passes a few -Z flags, which
# RUSTC_BOOTSTRAP allows. No sanitizer: the code has no unsafe (lints deny it), so the checks
# that matter are panics, hangs and the targets' own assertions.
export RUSTC_BOOTSTRAP=1

seed() {
    local t="$1" dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    case "$t" in
        rules) cp rules/*.yaml "$dir/" ;;
        config) cp tests/configs/*.yaml examples/demo/*.yaml "$dir/" ;;
        decode)
            printf 'a=1' | gzip -c | { printf '\x00'; cat; } > "$dir/gzip"
            printf 'a=1' | python3 -c 'import sys, zlib; sys.stdout.buffer.write(b"\x01" + zlib.compress(sys.stdin.buffer.read()))' > "$dir/deflate"
            printf '\x04plain body' > "$dir/identity"
            ;;
        transforms)
            printf '\x03\x00\x05\x0aA%%41+&lt;/*x*/ ../..//\\u0041' > "$dir/mixed"
            printf '\x01\x0bQUFBQUFBQUE=' > "$dir/base64"
            ;;
        inspect)
            printf 'GET /?q=1%%27+or+1=1--\nHost: a\n' > "$dir/query"
            printf 'POST /api\nContent-Type: application/json\n\n{"a":[{"b":"${jndi:ldap://x}"}]}' > "$dir/json"
            local corpora=../shared/corpora
            if [ -d "$corpora" ]; then
                # A sample of corpus requests in the target's layout.
                python3 - "$corpora" "$dir" <<'PY'
import base64, json, pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for f in sorted(src.glob("*.jsonl")):
    for i, line in enumerate(open(f, encoding="utf-8")):
        if i % 50:
            continue
        r = json.loads(line)
        body = r.get("body")
        if body is None and r.get("body_b64"):
            body = base64.b64decode(r["body_b64"]).decode("utf-8", "replace")
        head = f'{r["method"]} {r["target"]}\n' + "".join(f"{k}: {v}\n" for k, v in r.get("headers", []))
        data = head + ("\n" + body if body else "")
        (out / f"corpus-{n}").write_text(data, encoding="utf-8")
        n += 1
PY
            fi
            ;;
    esac
}

cargo fuzz build --sanitizer none
for t in "${targets[@]}"; do
    seed "$t"
    echo "== $t: ${secs}s"
    cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
done
