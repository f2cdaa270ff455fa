#!/usr/bin/env bash
# The plugin author's path end to end, with the third-party `keywords` plugin of
# examples/keywords (PLUGIN_GUIDE.md explains each step): build it for wasm32-wasip2, run it
# with `taskbox exec`, write its manifest with the real sha256, start a worker on an empty
# plugin directory that grants the plugin `log` and `kv`, install the plugin into the running
# worker with `taskbox plugin add`, send it tasks, read the results, and list the plugins.
# Redis: the one on 127.0.0.1:6379 (db 15), else a private redis-server.
# Usage: examples/example.sh [path/to/taskbox]    Exits non-zero as soon as a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
taskbox=$(realpath "${1:-target/release/taskbox}")
if [ ! -x "$taskbox" ]; then
    echo "error: $taskbox is missing; build it with \`just build\`" >&2
    exit 1
fi
target_dir=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "error: $*" >&2
    exit 1
}
# Prints a JSON value indented, with each innermost object or array (a keyword) on one line;
# the Celery result meta `taskbox result` prints is summarised first.
pretty() {
    python3 - "$1" <<'PY'
import json, sys

def dump(v, pad=""):
    inner = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
    if inner is None or not v or all(not isinstance(x, (dict, list)) for x in inner):
        return json.dumps(v, ensure_ascii=False)
    items = v.items() if isinstance(v, dict) else [(None, x) for x in v]
    lines = [pad + "  " + (json.dumps(k) + ": " if k is not None else "") + dump(x, pad + "  ") for k, x in items]
    o, c = "{}" if isinstance(v, dict) else "[]"
    return o + "\n" + ",\n".join(lines) + "\n" + pad + c

v = json.loads(sys.argv[1])
if isinstance(v, dict) and "status" in v and "taskbox" in v:
    t = v["taskbox"] or {}
    print(f"state {v['status']}, attempt {t.get('attempt')}, {t.get('duration_ms', 0):.1f} ms, "
          f"fuel {t.get('fuel_used')}, peak memory {t.get('peak_memory')} bytes; result:")
    v = v["result"]
print(dump(v))
PY
}

echo "== 1. Test the plugin natively, then build the component for wasm32-wasip2"
cargo test --manifest-path examples/keywords/Cargo.toml --target-dir "$target_dir" --quiet
cargo build --manifest-path examples/keywords/Cargo.toml --target wasm32-wasip2 --release \
    --target-dir "$target_dir"
wasm="$target_dir/wasm32-wasip2/release/keywords.wasm"
[ -f "$wasm" ] || fail "the build did not produce $wasm"

# The committed manifest pins a placeholder digest; the bundle under target/ gets the real one.
bundle="$target_dir/example-keywords"
mkdir -p "$bundle"
cp "$wasm" "$bundle/keywords.wasm"
sha=$(sha256sum "$bundle/keywords.wasm" | cut -d' ' -f1)
sed -E "s/^sha256 = \"[0-9a-f]{64}\"/sha256 = \"$sha\"/" examples/keywords/plugin.toml > "$bundle/plugin.toml"
grep -q "^sha256 = \"$sha\"" "$bundle/plugin.toml" || fail "could not write the sha256 into $bundle/plugin.toml"
echo "== Wrote $bundle/plugin.toml with sha256 $sha"
echo

echo "== 2. taskbox plugin info: what the component imports and serves"
"$taskbox" plugin info "$bundle/keywords.wasm" > "$work/info.txt"
grep -E '^(sha256|wit|tasks|capabilities):' "$work/info.txt"
echo

echo "== 3. taskbox exec: run keywords.extract locally, under the full sandbox, no broker"
# The document as JSON arguments: [text] for extract, {"text": ..., "top_k": 3} for tag.
python3 - examples/documents/sandboxing.md "$work" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
json.dump([text], open(f"{sys.argv[2]}/args.json", "w"))
json.dump({"text": text, "top_k": 3}, open(f"{sys.argv[2]}/tag-kwargs.json", "w"))
PY
out=$("$taskbox" exec "$bundle/keywords.wasm" --task keywords.extract --args "@$work/args.json" --kwargs '{"top_k": 5}')
echo "keywords.extract(<examples/documents/sandboxing.md>, top_k=5):"
pretty "$out"
set +e
"$taskbox" exec "$bundle/keywords.wasm" --task keywords.extract --args '["   "]' 2>"$work/exec.err"
code=$?
set -e
[ "$code" -eq 3 ] || fail "an empty text should be rejected with exit code 3, got $code"
echo "keywords.extract(\"   \"): exit $code, $(cat "$work/exec.err")"
echo

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    broker="redis://127.0.0.1:6379/15"   # db 15, so the example does not touch your data
    echo "== Using the Redis on 127.0.0.1:6379 (db 15)"
else
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/redis.log" &
    pids+=($!)
    broker="redis://127.0.0.1:$port/0"
    tries=0
    until redis-cli -p "$port" ping >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "redis-server did not start (see $work/redis.log)"
        sleep 0.1
    done
    echo "== Started a private redis-server on port $port"
fi

# The operator's side: an empty plugin directory, and a grant of log and kv to `keywords`.
mkdir -p "$work/plugins"
config="$work/taskbox.toml"
cat > "$config" <<TOML
[worker]
queues = ["plugin"]
plugins_dir = "$work/plugins"
plugin_poll = "1s"
shutdown_grace = "5s"

[plugins.keywords]
capabilities = ["log", "kv"]
TOML
tb() { "$taskbox" "$@" --config "$config" --broker "$broker" --log-level warn; }

echo "== 4. taskbox plugin verify: every load-time check against this worker's grant"
tb plugin verify "$bundle/keywords.wasm" --manifest "$bundle/plugin.toml"
echo

tb purge -Q plugin >/dev/null
LOG_LEVEL=warn,taskbox::worker=info,taskbox::registry=info,taskbox::guest=info \
    "$taskbox" worker --config "$config" --broker "$broker" -c 2 >"$work/worker.log" 2>&1 &
worker=$!
pids+=("$worker")
tries=0
until grep -q "worker ready" "$work/worker.log"; do
    kill -0 "$worker" 2>/dev/null || { cat "$work/worker.log" >&2; fail "the worker exited during start-up"; }
    tries=$((tries + 1))
    [ "$tries" -lt 600 ] || fail "the worker was not ready within 60 s"
    sleep 0.1
done
echo "== 5. Worker running with an empty plugin directory $work/plugins"
echo

echo "== 6. taskbox plugin add: install into the running worker (no restart)"
tb plugin add "$bundle/keywords.wasm" --manifest "$bundle/plugin.toml"
tries=0
until grep -q "plugin directory reloaded.*keywords.extract" "$work/worker.log"; do
    kill -0 "$worker" 2>/dev/null || { cat "$work/worker.log" >&2; fail "the worker exited"; }
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || { cat "$work/worker.log" >&2; fail "the worker did not load the plugin within 30 s"; }
    sleep 0.1
done
echo "the worker hot-reloaded its plugin directory and serves keywords.*"
echo

echo "== 7. taskbox send keywords.extract --wait: the result JSON"
out=$(tb send keywords.extract --args "@$work/args.json" --kwargs '{"top_k": 5}' --wait 30)
pretty "$out"
echo

echo "== 8. taskbox send keywords.tag (prints the task id), then taskbox result ID --wait"
id=$(tb send keywords.tag --args '["sandboxing-md"]' --kwargs "@$work/tag-kwargs.json")
echo "task id: $id"
out=$(tb result "$id" --wait 30)
pretty "$out"
echo

echo "== 9. keywords.lookup reads what keywords.tag stored in the plugin's kv"
out=$(tb send keywords.lookup --args '["sandboxing-md"]' --wait 30)
pretty "$out"
echo

echo "== 10. Bad input through the worker: a Reject, stored as FAILURE and never retried"
set +e
tb send keywords.extract --args '["some text"]' --kwargs '{"top_k": 0}' --wait 30 2>"$work/send.err"
code=$?
set -e
[ "$code" -eq 4 ] || fail "top_k=0 should fail with exit code 4, got $code"
echo "keywords.extract(\"some text\", top_k=0): exit $code, $(tail -n 1 "$work/send.err")"
echo "the dead-letter list (newest first) keeps it with the reason:"
tb dlq list --limit 1 | cut -c1-160
echo

echo "== 11. Guest log records in the worker's log"
grep -E "tagged document|extracted keywords" "$work/worker.log" | head -n 3 | cut -c1-200 \
    || fail "no guest log records in the worker log"
echo

echo "== 12. taskbox plugin list: the plugin directory, and what each live worker loaded"
tb plugin list
echo

echo "== Stopping the worker (SIGTERM: warm shutdown)"
kill -TERM "$worker"
set +e
wait "$worker"
code=$?
set -e
[ "$code" -eq 0 ] || { tail -n 20 "$work/worker.log" >&2; fail "the worker exited with $code"; }
echo "done: worker stopped, $work removed on exit"
