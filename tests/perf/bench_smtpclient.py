"""Speed of smtpe.smtpclient, the smart-host forwarding path: messages per second delivered
to Postfix smtp-sink (no dump files) by 20 concurrent send_mail calls on one Loop, each a
new connection, 2 KB messages. Not a test: it asserts nothing about time; it prints the
figures (and CPU milliseconds of this process per message) and returns them as a dict.

    python tests/perf/bench_smtpclient.py [--messages 3000] [--concurrency 20]

Variants: PIPELINING used or not (smtp-sink advertises it), the message given as bytes or
as a spool file (the forwarding case). The variants run interleaved for `--rounds` rounds and
the best round of each is reported (the machine is shared: the best is the least disturbed).
"""
import argparse
import os
import sys
import tempfile
import time

if __name__ == "__main__":   # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe.loop import Loop  # noqa: E402
from smtpe.smtpclient import Timeouts, send_mail  # noqa: E402
from tests.support.smtpsink import SmtpSink  # noqa: E402

TIMEOUTS = Timeouts(connect=10.0, command=30.0, dot=60.0)


def message_of(size):
    head = b"From: bench@client.example.org\r\nTo: rcpt@example.org\r\nSubject: bench\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 .,;:!?\r\n"
    body = bytearray(head)
    while len(body) < size:
        body += (b"." if len(body) % 5 == 0 else b"") + line
    return bytes(body[:size - 2]) + b"\r\n"


def forward(address, source, messages, concurrency, pipelining):
    """Deliver `messages` copies of `source`, `concurrency` at a time -> (seconds, CPU s)."""
    loop = Loop()
    state = {"launched": 0, "done": 0, "failed": 0}

    def launch():
        state["launched"] += 1
        send_mail(loop, [address], b"bench@client.example.org", [b"rcpt@example.org"], source,
                  TIMEOUTS, "bench.example.org", finished, pipelining=pipelining)

    def finished(result):
        state["done"] += 1
        if not result.ok:
            state["failed"] += 1
            if state["failed"] == 1:
                print("  first failure: %s" % result.describe())
        if state["launched"] < messages:
            launch()

    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(min(concurrency, messages)):
        launch()
    while state["done"] < messages:
        loop.run_once(1.0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for _ in range(20):          # let the last QUITs go out before the loop is dropped
        loop.run_once(0.01)
    loop.close()
    if state["failed"]:
        print("  %d of %d deliveries failed" % (state["failed"], messages))
    return elapsed, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    message = message_of(args.size)
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        spool = os.path.join(folder, "spool-message")
        with open(spool, "wb") as handle:
            handle.write(message)
        with SmtpSink(folder, dump=False) as sink:
            forward(sink.address, message, min(200, args.messages), args.concurrency, True)  # warm-up
            print("%d messages of %d bytes, %d concurrent, new connection each, to smtp-sink (best of %d)"
                  % (args.messages, len(message), args.concurrency, args.rounds))
            variants = [(pipelining, kind, source) for pipelining in (True, False)
                        for kind, source in (("spool file", spool), ("bytes", message))]
            best = {}
            for _ in range(args.rounds):
                for pipelining, kind, source in variants:
                    elapsed, cpu = forward(sink.address, source, args.messages, args.concurrency, pipelining)
                    name = "%s, %s" % ("pipelining" if pipelining else "no pipelining", kind)
                    if name not in best or elapsed < best[name][0]:
                        best[name] = (elapsed, cpu)
            for name, (elapsed, cpu) in best.items():
                figures[name] = args.messages / elapsed
                print("  %-28s %8.0f msg/s   %.3f ms CPU/msg" % (name, figures[name], 1000 * cpu / args.messages))
    return figures


if __name__ == "__main__":
    main()
