"""The Celery side of `just bench` (tests/bench/e2e.rs): a minimal app whose tasks have the
same names as the test guest `tests/guests/noop`, so one Redis list of identical messages can
be drained by either worker.

    cd examples/bench
    BENCH_REDIS_URL=redis://127.0.0.1:6379/0 celery -A celery_app worker -P threads -c 2 \
        -Q dataset --loglevel WARNING

Broker and result backend are both BENCH_REDIS_URL. IGNORE_RESULT=1 sets
task_ignore_result (Dify's setting); the bench also marks each message `ignore_result: true`
for results-off runs. Everything else is Celery's default. On `worker_ready` the app logs
"celery worker ready" at WARNING level, which is how the bench knows the worker is consuming.
"""

import logging
import os

from celery import Celery
from celery.signals import worker_ready

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("celery_app", broker=URL, backend=URL)
app.conf.update(
    task_ignore_result=os.environ.get("IGNORE_RESULT") == "1",
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop():
    """Does nothing: the per-task overhead benchmark."""
    return None


@app.task(name="echo")
def echo(value):
    """Returns its argument unchanged: the round-trip latency probe."""
    return value


@worker_ready.connect
def announce_ready(**_kwargs):
    logging.getLogger("celery_app").warning("celery worker ready")
