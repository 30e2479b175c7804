"""Speed of the smart-host client (smtpe/_speedups/smtpclient.pyx), the forwarding path:
messages per second delivered to Postfix smtp-sink (no dump files) by 20 concurrent
send_mail calls on one Loop, 2 KB messages. Not a test: it asserts nothing about time; it
prints the figures (and CPU microseconds of this process per message) and returns them as
a dict.

    python tests/perf/bench_smtpclient.py [--messages 3000] [--concurrency 20]

Variants: a new connection per message, PIPELINING used or not (smtp-sink advertises it),
the message given as bytes or as a spool file (the forwarding case); and the daemon's real
case, "pooled": each sender sends its next message when the previous one completed, over
the loop's pooled connections, 5 KB (`--pooled-size`) from bytes. The variants run
interleaved for `--rounds` rounds and the best round of each (least CPU per message) is
reported (the machine is shared: the best is the least disturbed).
"""
import argparse
import os
import sys
import tempfile
import time

if __name__ == "__main__":   # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe._speedups.loop import Loop  # noqa: E402
from smtpe._speedups.smtpclient import Timeouts, close_idle, send_mail  # noqa: E402
from tests.support.smtpsink import SmtpSink  # noqa: E402

TIMEOUTS = Timeouts(connect=10.0, command=30.0, dot=60.0)


def message_of(size):
    head = b"From: bench@client.example.org\r\nTo: rcpt@example.org\r\nSubject: bench\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog. 0123456789 .,;:!?\r\n"
    body = bytearray(head)
    while len(body) < size:
        body += (b"." if len(body) % 5 == 0 else b"") + line
    return bytes(body[:size - 2]) + b"\r\n"


def forward(address, source, messages, concurrency, pipelining, pooled=False):
    """Deliver `messages` copies of `source`, `concurrency` at a time -> (seconds, CPU s).
    Not pooled: a new connection per message (the pool is shut before the first). Pooled: the
    connections of a warm-up message per sender are reused, as in a running daemon."""
    loop = Loop()
    if not pooled:
        close_idle(loop)
    else:
        warm_up(loop, address, source, concurrency)
    state = {"launched": 0, "done": 0, "failed": 0}

    def launch():
        state["launched"] += 1
        deliver(loop, address, source, finished, pipelining)

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
    close_idle(loop)
    for _ in range(20):          # let the last QUITs go out before the loop is dropped
        loop.run_once(0.01)
    loop.close()
    if state["failed"]:
        print("  %d of %d deliveries failed" % (state["failed"], messages))
    return elapsed, cpu


def deliver(loop, address, source, on_done, pipelining=True):
    send_mail(loop, [address], b"bench@client.example.org", [b"rcpt@example.org"], source,
              TIMEOUTS, "bench.example.org", on_done, pipelining=pipelining)


def warm_up(loop, address, source, concurrency):
    """One message per sender at once: `concurrency` connections end up idle in the pool."""
    results = []
    for _ in range(concurrency):
        deliver(loop, address, source, results.append)
    while len(results) < concurrency:
        loop.run_once(1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--pooled-size", type=int, default=5120)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only-pooled", action="store_true", help="run only the pooled variant")
    args = parser.parse_args(argv)
    message = message_of(args.size)
    pooled_message = message_of(args.pooled_size)
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        spool = os.path.join(folder, "spool-message")
        with open(spool, "wb") as handle:
            handle.write(message)
        with SmtpSink(folder, dump=False) as sink:
            forward(sink.address, message, min(200, args.messages), args.concurrency, True)  # warm-up
            print("%d messages, %d concurrent, to smtp-sink (best of %d); new connection each: %d bytes;"
                  " pooled: %d bytes"
                  % (args.messages, args.concurrency, args.rounds, len(message), len(pooled_message)))
            variants = [] if args.only_pooled else [
                ("new connection, %s, %s" % ("pipelining" if pipelining else "no pipelining", kind),
                 source, pipelining, False)
                for pipelining in (True, False)
                for kind, source in (("spool file", spool), ("bytes", message))]
            variants.append(("pooled, pipelining, bytes", pooled_message, True, True))
            best = {}
            for _ in range(args.rounds):
                for name, source, pipelining, pooled in variants:
                    elapsed, cpu = forward(sink.address, source, args.messages, args.concurrency,
                                           pipelining, pooled)
                    if name not in best or cpu < best[name][1]:
                        best[name] = (elapsed, cpu)
            for name, (elapsed, cpu) in best.items():
                figures[name] = args.messages / elapsed
                print("  %-42s %8.0f msg/s   %6.1f us CPU/msg"
                      % (name, figures[name], 1e6 * cpu / args.messages))
    return figures


if __name__ == "__main__":
    main()
