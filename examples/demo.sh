#!/usr/bin/env bash
# The taskbox tour, with the release binary: start a worker against Redis (a private
# redis-server when none answers on 127.0.0.1:6379), push the example documents through the
# document pipeline (a Celery chain extract.text -> chunking.split -> indexing.index), search
# them, send a mail to the outbox, run a retention dry run, then send hostile tasks and show each
# one contained with its typed error while the worker keeps serving.
# Usage: examples/demo.sh [path/to/taskbox]
set -euo pipefail
cd "$(dirname "$0")/.."
taskbox=$(realpath "${1:-target/release/taskbox}")
hostile=$(realpath target/wasm32-wasip2/guest/taskbox_guest_hostile.wasm)
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    broker="redis://127.0.0.1:6379/15"   # db 15, so the demo does not touch your data
    echo "== Using the Redis on 127.0.0.1:6379 (db 15)"
else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/redis.log" &
    pids+=($!)
    broker="redis://127.0.0.1:$port/0"
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
    echo "== Started a private redis-server on port $port"
fi
"$taskbox" purge -Q pipeline,dataset,mail,retention --broker "$broker" >/dev/null
redis-cli -u "$broker" del taskbox:kv:indexing >/dev/null 2>&1 || true

cat > "$work/taskbox.toml" <<TOML
[worker]
queues = ["pipeline", "dataset", "mail", "retention"]
shutdown_grace = "5s"

[plugins.retention]
dirs = ["$work/storage:/storage"]

[mail]
kind = "outbox"
outbox_dir = "$work/outbox"
default_from = "demo@taskbox.localhost"

[plugins.hostile]
path = "$hostile"
capabilities = ["log", "mail"]
enforcement = "call"   # load it anyway; each ungranted call fails with CapabilityDenied

[tasks."hostile.run"]
queue = "pipeline"
limits = { fuel = 200000000, memory = "64MiB", timeout = "2s" }
TOML

mkdir -p "$work/storage"
LOG_LEVEL=warn,taskbox::worker=info "$taskbox" worker --config "$work/taskbox.toml" --broker "$broker" -c 4 >"$work/worker.log" 2>&1 &
pids+=($!)
until grep -q "worker ready" "$work/worker.log" 2>/dev/null || ! kill -0 "${pids[-1]}" 2>/dev/null; do
    sleep 0.1
done
if ! kill -0 "${pids[-1]}" 2>/dev/null; then cat "$work/worker.log"; exit 1; fi
echo "== Worker running (4 slots), consuming pipeline, dataset, mail, retention"
echo
send() { "$taskbox" send "$@" --broker "$broker" --config "$work/taskbox.toml" --wait 60 2>"$work/send.err"; }

echo "== The document pipeline: extract.text -> chunking.split -> indexing.index, one Celery chain per file"
for doc in examples/documents/*.{md,html,csv,json,docx}; do
    [ -e "$doc" ] || continue
    args=$(python3 -c 'import base64,json,os,sys; p=sys.argv[1]; n=os.path.basename(p); print(json.dumps([{"id": n, "filename": n, "content_base64": base64.b64encode(open(p,"rb").read()).decode()}]))' "$doc")
    out=$(send extract.text --args "$args" --chain chunking.split --chain 'indexing.index:{"dataset": "demo"}') || { cat "$work/send.err"; exit 1; }
    python3 - "$doc" "$out" <<'PY'
import json, sys
doc, out = sys.argv[1], json.loads(sys.argv[2])
print(f"  {doc:<44} {out['segments']:>2} segments indexed into '{out['dataset']}' ({out['technique']})")
PY
done
echo
echo "== indexing.search('demo', 'bellwether canary'): the document with those rare words ranks first"
out=$(send indexing.search --args '["demo", "bellwether canary", 3]') || { cat "$work/send.err"; exit 1; }
python3 - "$out" <<'PY'
import json, sys
for i, hit in enumerate(json.loads(sys.argv[1])["results"], 1):
    print(f"  {i}. {hit['document_id']:<26} score {hit['score']:.3f}  {hit['content'][:70]!r}")
PY
echo
echo "== mail.send('invite_member', ...) rendered by the mail component, delivered to the outbox"
out=$(send mail.send --args '["invite_member", "ada@example.com"]' --kwargs '{"inviter_name": "Grace", "workspace_name": "Analytical Engines", "url": "https://example.com/invite/42"}') || { cat "$work/send.err"; exit 1; }
echo "  result: $out"
echo "  outbox: $(ls "$work/outbox" | head -n 1) ($(grep -h '^Subject:' "$work"/outbox/*.eml | head -n 1))"
echo
echo "== retention.sweep(dry_run=True): what a clean-up would delete, deleting nothing"
out=$(send retention.sweep --kwargs '{"dry_run": true}') || { cat "$work/send.err"; exit 1; }
python3 -c 'import json,sys; print("  " + json.dumps(json.loads(sys.argv[1])))' "$out"
echo

echo "== Hostile tasks through the same worker: each fails alone, with its kind"
rm -f "$work"/outbox/*.eml
hostile_send() {
    local label=$1 args=$2 out
    set +e
    out=$("$taskbox" send hostile.run --args "$args" --broker "$broker" --config "$work/taskbox.toml" --wait 30 2>"$work/send.err")
    set -e
    if [ -n "$out" ]; then
        printf '%-42s SUCCESS: %s\n' "$label" "$out"
    else
        printf '%-42s %s\n' "$label" "$(tail -n 1 "$work/send.err" | cut -d' ' -f2-)"
    fi
}
hostile_send "infinite loop (fuel 2e8)" '["spin"]'
hostile_send "allocate 1 GiB under a 64 MiB cap" '["alloc", 1073741824]'
hostile_send "unbounded recursion" '["recurse"]'
hostile_send "read /etc/passwd (no directory granted)" '["read_file", 0, "/etc/passwd"]'
hostile_send "panic" '["panic"]'
hostile_send "mail with a CR/LF header injection" '["mail", 1, "a@example.com\r\nBcc: x@example.com"]'
hostile_send "a proper mail (delivered to the outbox)" '["mail", 1, "ops@example.com"]'
hostile_send "enqueue without the queue capability" '["enqueue", 1, "pipeline"]'
printf '%-42s %s\n' "a normal task afterwards" "$("$taskbox" send hostile.run --args '["ok"]' --broker "$broker" --config "$work/taskbox.toml" --wait 30 2>/dev/null)"
echo "outbox: $(ls "$work/outbox" 2>/dev/null | wc -l) message(s); subject of the last: $(grep -h '^Subject:' "$work"/outbox/*.eml 2>/dev/null | tail -n 1)"
echo
echo "== Dead-letter list (tasks that failed for good, with their reason):"
"$taskbox" dlq list --broker "$broker" --limit 10 2>/dev/null | cut -c1-160
"$taskbox" dlq purge --broker "$broker" >/dev/null
echo
echo "== Stopping the worker (SIGTERM: warm shutdown)"
kill -TERM "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
