"""A real Celery 5 producer talking to taskbox workers: send_task/apply_async with args,
kwargs, countdown, expires, priority and queue, a two-step chain, and AsyncResult.get() for
results and failures. Prints one JSON object with what it observed."""

import json
import sys
import time

from celery import Celery, chain

url = sys.argv[1]
app = Celery("producer", broker=url, backend=url)
out = {}

r = app.send_task("echo", args=[{"a": 1, "b": [1, 2]}], queue="dataset")
out["echo"] = r.get(timeout=30)

r = app.send_task("hostile.run", args=["ok"], kwargs={"n": 0}, queue="pipeline", priority=3)
out["kwargs"] = r.get(timeout=30)

start = time.time()
r = app.send_task("record", args=["countdown"], kwargs={"log": "cd"}, queue="dataset", countdown=1.5)
out["countdown"] = r.get(timeout=30)
out["countdown_waited"] = time.time() - start

r = app.send_task("record", args=["expired"], kwargs={"log": "exp"}, queue="dataset", countdown=2, expires=0.5)
try:
    r.get(timeout=30)
    out["expired"] = "ran"
except Exception as e:  # noqa: BLE001 - we report whatever Celery raised
    out["expired"] = type(e).__name__
    out["expired_state"] = r.state

r = app.send_task("hostile.run", args=["spin"], queue="pipeline")
try:
    r.get(timeout=30)
    out["failure"] = "succeeded"
except Exception as e:  # noqa: BLE001
    out["failure"] = [type(e).__name__, str(e)]
    out["failure_state"] = r.state

steps = chain(
    app.signature("echo", args=[5]).set(queue="dataset"),
    app.signature("record", kwargs={"log": "pychain"}).set(queue="dataset"),
)
r = steps.apply_async()
out["chain"] = r.get(timeout=30)
out["chain_parent"] = r.parent.get(timeout=30)

print(json.dumps(out))
