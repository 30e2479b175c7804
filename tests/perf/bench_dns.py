"""How much Lua dns.* one Loop sustains: hooks waiting in dns.wait at once, and queries per
second, against a real nsd on 127.0.0.1 (Debian package nsd). Not a test: it asserts nothing
about time; it prints the figures and returns them as a dict (tests/perf/micro.py runs it).

    python tests/perf/bench_dns.py [--waiting 1000,2000] [--seconds 3] [--in-flight 200]

* waiting: N connections (Engine contexts) each run a DNSBL-style hook — three A queries,
  one of them answered `--delay` seconds late by a relay in front of nsd — and all N sit in
  dns.wait(1) at once. Reported: seconds to start them, whether all finished correctly, the
  memory per waiting hook, the CPU per hook.
* throughput: `--in-flight` hooks kept running (each three queries + dns.wait(1), names never
  repeated so c-ares' cache does not answer), for `--seconds`: hooks/s and queries/s, and the
  same for bare Resolver.query calls (no Lua) as the ceiling.
"""
import argparse
import io
import os
import resource
import sys
import tempfile
import time

if __name__ == "__main__":   # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe.dns import Resolver  # noqa: E402
from smtpe.engine import Engine  # noqa: E402
from smtpe.log import Log  # noqa: E402
from smtpe._speedups.loop import Loop  # noqa: E402
from smtpe.options import Options  # noqa: E402
from tests.support.dnsserver import DnsServer, nsd_binary, standard_zones  # noqa: E402
from tests.support.fakedns import FakeDns  # noqa: E402

MIN_SECONDS = 3.0            # per throughput measurement (micro.py --quick lowers it)
WAITING = (1000, 2000)
IN_FLIGHT = 200
DELAY = 1.0

SCRIPT = rb"""
function hook.dnsbl(reversed, slow_list)
    dns.open()
    dns.query(dns.class.IN, dns.type.A, reversed .. ".dnsbl.example")
    dns.query(dns.class.IN, dns.type.A, "2.0.0.127.dnsbl.example")
    dns.query(dns.class.IN, dns.type.A, reversed .. "." .. slow_list)
    local answers = dns.wait(1)
    local listed = answers["IN,A,2.0.0.127.dnsbl.example."]
    return #answers, listed and listed.answer and listed.answer[1].value
end
"""


def rss_kb():
    """Resident memory of this process now, in KB (Linux /proc)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_engine(folder, servers):
    script = os.path.join(folder, "bench.lua")
    with open(script, "wb") as handle:
        handle.write(SCRIPT)
    options = Options({"dns-servers": servers, "dns-max-timeout": "30", "lua-hook-timeout": "0"})
    return Engine(options, Loop(), Log(stream=io.StringIO()), script=script)


def close_engine(engine):
    resolver = getattr(engine.loop, "resolver", None)
    if resolver is not None:
        resolver.close()
    engine.loop.close()


class Names:
    """Reversed-IP labels never used before (so every query reaches the server)."""

    def __init__(self):
        self.count = 0

    def next(self):
        self.count += 1
        n = self.count
        return b"%d.%d.%d.10" % (n & 255, (n >> 8) & 255, (n >> 16) & 255)


def waiting_at_once(engine, count, names):
    """Start `count` hooks that all end up in dns.wait; run until all are done."""
    contexts = [engine.new_context() for _ in range(count)]
    outcomes = []
    rss_before, cpu_before = rss_kb(), cpu()
    started = time.monotonic()
    for ctx in contexts:
        engine.run_hook(ctx, "dnsbl", (names.next(), b"slow.dnsbl.example"), outcomes.append)
    launch_seconds = time.monotonic() - started
    waiting = sum(1 for ctx in contexts if ctx.run is not None)
    rss_waiting = rss_kb()
    deadline = time.monotonic() + DELAY + 60
    while len(outcomes) < count and time.monotonic() < deadline:
        engine.loop.run_once(0.05)
    elapsed = time.monotonic() - started
    good = sum(1 for o in outcomes if o.error is None and o.values == (3, b"127.0.0.2"))
    for ctx in contexts:
        ctx.close()
    return {"hooks": count, "waiting_at_once": waiting, "finished_ok": good,
            "launch_s": round(launch_seconds, 3), "all_done_s": round(elapsed, 3),
            "kb_per_waiting_hook": round((rss_waiting - rss_before) / count, 2),
            "cpu_ms_per_hook": round((cpu() - cpu_before) * 1000 / count, 3)}


def hook_throughput(engine, in_flight, seconds, names):
    """Keep `in_flight` dnsbl hooks running (no slow list) for `seconds`."""
    done = {"hooks": 0, "errors": 0, "last": None}
    stop_at = time.monotonic() + seconds

    def launch(ctx):
        engine.run_hook(ctx, "dnsbl", (names.next(), b"dnsbl.example"), lambda outcome: finished(ctx, outcome))

    def finished(ctx, outcome):
        done["hooks"] += 1
        done["last"] = time.monotonic()
        if outcome.error is not None or outcome.values[0] != 3:
            done["errors"] += 1
        if time.monotonic() < stop_at:
            engine.loop.call_soon(launch, ctx)

    contexts = [engine.new_context() for _ in range(in_flight)]
    cpu_before, started = cpu(), time.monotonic()
    for ctx in contexts:
        launch(ctx)
    while time.monotonic() < stop_at + 10 and any(ctx.run is not None for ctx in contexts):
        engine.loop.run_once(0.05)
    elapsed = (done["last"] or time.monotonic()) - started  # not the idle turns after it
    for ctx in contexts:
        ctx.close()
    queries = done["hooks"] * 3
    return {"in_flight_hooks": in_flight, "hooks_per_s": round(done["hooks"] / elapsed),
            "queries_per_s": round(queries / elapsed), "errors": done["errors"],
            "cpu_us_per_query": round((cpu() - cpu_before) * 1e6 / max(queries, 1), 1)}


def resolver_throughput(server, in_flight, seconds, names):
    """Bare Resolver.query, `in_flight` at a time: the ceiling without Lua."""
    loop = Loop()
    resolver = Resolver(loop, [server], max_timeout=30)
    state = {"done": 0, "errors": 0, "last": None}
    stop_at = time.monotonic() + seconds

    def ask():
        resolver.query(names.next() + b".dnsbl.example", 1, answered)

    def answered(response):
        state["done"] += 1
        state["last"] = time.monotonic()
        if response.rcode != 3:
            state["errors"] += 1
        if time.monotonic() < stop_at:
            ask()

    cpu_before, started = cpu(), time.monotonic()
    for _ in range(in_flight):
        ask()
    while resolver.pending and time.monotonic() < stop_at + 10:
        loop.run_once(0.05)
    elapsed = (state["last"] or time.monotonic()) - started
    resolver.close()
    loop.close()
    return {"in_flight": in_flight, "queries_per_s": round(state["done"] / elapsed),
            "errors": state["errors"],
            "cpu_us_per_query": round((cpu() - cpu_before) * 1e6 / max(state["done"], 1), 1)}


def run(waiting=WAITING, in_flight=IN_FLIGHT, seconds=None):
    if nsd_binary() is None:
        return {"error": "nsd is not installed (Debian package nsd)"}
    seconds = MIN_SECONDS if seconds is None else seconds
    names = Names()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="smtpe-bench-dns-") as folder:
        with DnsServer(folder, standard_zones()) as server, \
                FakeDns("slow", upstream=server.port, delay=DELAY) as relay:
            engine = make_engine(folder, relay.address)
            try:
                for count in waiting:
                    figures["waiting_%d" % count] = waiting_at_once(engine, count, names)
            finally:
                close_engine(engine)
            engine = make_engine(folder, server.address)
            try:
                figures["hooks"] = hook_throughput(engine, in_flight, seconds, names)
            finally:
                close_engine(engine)
            figures["resolver"] = resolver_throughput(server.address, in_flight, seconds, names)
    return figures


def report(figures):
    for name, values in figures.items():
        if isinstance(values, dict):
            print("  %-14s %s" % (name, "  ".join("%s=%s" % item for item in values.items())))
        else:
            print("  %-14s %s" % (name, values))


def main():
    global DELAY
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--waiting", default=",".join(map(str, WAITING)),
                        help="comma-separated numbers of hooks waiting at once")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT)
    parser.add_argument("--seconds", type=float, default=MIN_SECONDS)
    parser.add_argument("--delay", type=float, default=DELAY, help="seconds the slow list takes")
    args = parser.parse_args()
    DELAY = args.delay
    figures = run([int(n) for n in args.waiting.split(",") if n], args.in_flight, args.seconds)
    report(figures)


if __name__ == "__main__":
    main()
