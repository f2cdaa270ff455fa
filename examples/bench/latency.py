"""Round-trip latency as a Celery client sees it: sequential `echo.apply_async(...).get()`
calls against whichever worker consumes the queue (taskbox or Celery), one at a time.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/0 python latency.py --calls 1000 --warmup 50

`apply_async` subscribes to the result channel, publishes the message, and `.get()` waits for
the PUBLISH of the result (Celery's Redis ResultConsumer). Prints one JSON object:
{"ms": [per-call milliseconds, in call order]} for the timed calls only.
"""

import argparse
import json
import sys
import time

from celery_app import echo


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--queue", default="dataset")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()

    samples = []
    for i in range(args.warmup + args.calls):
        start = time.perf_counter()
        value = echo.apply_async((i,), queue=args.queue).get(timeout=args.timeout)
        elapsed = time.perf_counter() - start
        if value != i:
            sys.exit(f"echo({i}) returned {value!r}")
        if i >= args.warmup:
            samples.append(elapsed * 1000.0)
    print(json.dumps({"ms": samples}))


if __name__ == "__main__":
    main()
