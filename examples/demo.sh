#!/usr/bin/env bash
# A tour of the sandbox with the release binary: chunk the example documents with the built-in
# `chunking` component, then run hostile tasks and show each one contained with its typed error.
# Usage: examples/demo.sh [path/to/taskbox]
set -euo pipefail
cd "$(dirname "$0")/.."
taskbox=${1:-target/release/taskbox}
hostile=target/wasm32-wasip2/guest/taskbox_guest_hostile.wasm
export LOG_LEVEL=${LOG_LEVEL:-warn}

echo "== Chunking the example documents inside the sandbox"
for doc in examples/documents/*.md; do
    args=$(python3 -c 'import json,sys; print(json.dumps([open(sys.argv[1], encoding="utf-8").read()]))' "$doc")
    out=$("$taskbox" exec chunking --task chunking.split --args "$args")
    python3 - "$doc" "$out" <<'PY'
import json, sys
doc, out = sys.argv[1], json.loads(sys.argv[2])
segments = out["segments"] if isinstance(out, dict) else out
print(f"{doc}: {len(segments)} segments")
for s in segments[:3]:
    if isinstance(s, dict):
        print(f"  #{s['position']} {s['tokens']:>4} tokens sha256 {s['sha256'][:12]}  {s['content'][:60]!r}")
    else:
        print(f"  {s[:60]!r}")
PY
done

echo
echo "== Hostile tasks: each fails with its own error; the next task runs normally"
run() {
    local label=$1
    shift
    set +e
    err=$("$taskbox" exec "$hostile" "$@" 2>&1 >/dev/null)
    code=$?
    set -e
    printf '%-44s exit %-3s %s\n' "$label" "$code" "$(echo "$err" | head -n 1)"
}
run "infinite loop, fuel 1e8" --args '["spin"]' --fuel 100000000
run "infinite loop, no fuel, 300ms deadline" --args '["spin"]' --fuel 0 --timeout 300ms
run "allocate 1 GiB under a 64 MiB cap" --args '["alloc", 1073741824]' --memory 64MiB
run "unbounded recursion" --args '["recurse"]'
run "read /etc/passwd (no directory granted)" --args '["read_file", 0, "/etc/passwd"]'
run "panic" --args '["panic"]'
run "mail with a CR/LF header injection" --args '["mail", 1, "a@example.com\r\nBcc: x@example.com"]'
printf '%-44s %s\n' "a normal task afterwards" "$("$taskbox" exec "$hostile" --args '["ok"]')"
