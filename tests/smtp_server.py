"""A recording SMTP server for taskbox's mail tests, built on aiosmtpd.

It listens on a loopback port and writes every accepted message into a directory as
``msg-NNNN.json``: the envelope (MAIL FROM, RCPT TO), the raw message, and its decoded
headers and text/HTML parts, so a test can assert on content without parsing MIME itself.

It can be told to refuse the first N RCPT or DATA commands, with a temporary (451) or a
permanent (550) reply, to exercise the client's retry decisions; each refusal is appended to
``refusals.log``. It runs until SIGTERM or SIGINT.

    python smtp_server.py --port 2525 --dir /tmp/mail [--fail 1 --fail-at data --fail-with 451]
"""

import argparse
import json
import os
import signal
import sys
import threading
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller

REPLIES = {
    "451": "451 4.3.0 try again later",
    "550": "550 5.7.1 message refused",
}


class Recorder:
    """aiosmtpd handler: refuses the first `fail` commands of one stage, records the rest."""

    def __init__(self, out_dir, fail, fail_at, fail_with):
        self.out_dir = out_dir
        self.remaining = fail
        self.fail_at = fail_at
        self.reply = REPLIES[fail_with]
        self.count = 0
        self.lock = threading.Lock()

    def _refuse(self, stage):
        """Whether to refuse this `stage` command; records the refusal when so."""
        with self.lock:
            if stage != self.fail_at or self.remaining <= 0:
                return False
            self.remaining -= 1
            with open(os.path.join(self.out_dir, "refusals.log"), "a") as log:
                log.write(f"{stage} {self.reply}\n")
            return True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self._refuse("rcpt"):
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self._refuse("data"):
            return self.reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "raw": raw.decode("utf-8", "replace"),
            "subject": str(message.get("Subject", "")),
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "message_id": str(message.get("Message-ID", "")),
            "text": part(message, "plain"),
            "html": part(message, "html"),
        }
        with self.lock:
            self.count += 1
            name = f"msg-{self.count:04d}.json"
        # Written aside and renamed, so a reader never sees half a file.
        tmp = os.path.join(self.out_dir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.replace(tmp, os.path.join(self.out_dir, name))
        return "250 2.0.0 Message accepted for delivery"


def part(message, subtype):
    """The decoded text/<subtype> body of `message` with LF line ends, or None."""
    body = message.get_body(preferencelist=(subtype,))
    return None if body is None else body.get_content().replace("\r\n", "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True, help="where received messages are written")
    parser.add_argument("--fail", type=int, default=0, help="refuse this many commands first")
    parser.add_argument("--fail-at", choices=["rcpt", "data"], default="data")
    parser.add_argument("--fail-with", choices=sorted(REPLIES), default="451")
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    handler = Recorder(args.dir, args.fail, args.fail_at, args.fail_with)
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=args.port,
        enable_SMTPUTF8=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    print("READY", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
