"""In-process figures: the content-toolkit micro-benchmarks (tests/perf/bench_*.py, each
with a run() that returns a dict), the cost of one Lua hook call, and the CPU cost of one
whole message through a Session without sockets (no network, no smart host)."""
import glob
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
QUICK_SECONDS = 0.05     # per measurement of a bench script in --quick mode

TRIVIAL_HOOKS = """
function hook.mail(sender, domain) end
function hook.rcpt(recipient, domain) end
function hook.data() end
function hook.dot(path) end
function hook.forward(path, sender, recipients) return "250 2.0.0 kept" end
"""


def bench_scripts():
    return sorted(glob.glob(os.path.join(HERE, "bench_*.py")))


def run_bench_script(path, quick):
    """Import a bench_*.py file and call its run(); -> (name, dict or {"error": text})."""
    name = os.path.splitext(os.path.basename(path))[0]
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    try:
        spec = importlib.util.spec_from_file_location("perf_" + name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if quick and hasattr(module, "MIN_SECONDS"):
            module.MIN_SECONDS = QUICK_SECONDS
        runner = getattr(module, "run", None) or getattr(module, "main", None)
        if runner is None:
            return name, {"error": "no run() in %s" % os.path.basename(path)}
        # main(argv=None) parses sys.argv when given nothing: give it no arguments instead
        figures = runner([]) if inspect.signature(runner).parameters else runner()
        if hasattr(module, "report") and isinstance(figures, dict):
            print("-- %s" % name)
            module.report(figures)
        return name, figures if isinstance(figures, dict) else {"result": figures}
    except (Exception, SystemExit) as exc:  # a bench script failing must not stop the suite
        return name, {"error": "%s: %s" % (type(exc).__name__, exc)}


class _Harness:
    """An in-process worker (tests/support/inproc.py) in a temporary folder."""

    def __init__(self, script):
        from tests.support.inproc import Harness
        self.folder = tempfile.mkdtemp(prefix="smtpe-perf-")
        self.harness = Harness(self.folder, script, rate_global=0)

    def __enter__(self):
        return self.harness

    def __exit__(self, *exc):
        shutil.rmtree(self.folder, ignore_errors=True)


def hook_call_us(calls=20000):
    """Microseconds for one call of a defined, empty hook through the engine (coroutine,
    budgets, context switch), as a session makes it."""
    with _Harness(TRIVIAL_HOOKS) as harness:
        return _hook_call_us(harness, calls)


def _hook_call_us(harness, calls):
    engine = harness.worker.engine
    ctx = engine.new_context(None)
    outcomes = []
    args = (b"rcpt@example.org", b"example.org")
    for _ in range(200):                     # warm up
        engine.run_hook(ctx, "rcpt", args, outcomes.append)
    started = time.perf_counter()
    for _ in range(calls):
        engine.run_hook(ctx, "rcpt", args, outcomes.append)
    elapsed = time.perf_counter() - started
    assert all(outcome.error is None for outcome in outcomes)
    return elapsed / calls * 1e6


def session_message_us(messages=2000, size=5120):
    """Microseconds of CPU for one message through a Session (MAIL, RCPT, DATA, the
    message, the dot: four hooks, spool file, scanner) with a memory transport; hook.forward
    answers, so nothing is forwarded."""
    with _Harness(TRIVIAL_HOOKS) as harness:
        return _session_message_us(harness, messages, size)


def _session_message_us(harness, messages, size):
    client = harness.connect("192.0.2.1")
    client.send("EHLO client.example.org\r\n")
    line = b"x" * 74 + b"\r\n"
    message = (b"Subject: load\r\n\r\n" + line * (size // len(line)) + b".\r\n")
    transaction = (b"MAIL FROM:<s@client.example.org>\r\nRCPT TO:<r@example.org>\r\nDATA\r\n")
    for _ in range(50):                      # warm up
        client.send(transaction)
        client.send(message)
    accepted = 0
    started = time.process_time()
    for _ in range(messages):
        client.send(transaction)
        accepted += client.send(message).count("250 2.0.0 kept")
    elapsed = time.process_time() - started
    if accepted != messages:
        raise RuntimeError("in-process session accepted %d of %d messages" % (accepted, messages))
    return elapsed / messages * 1e6


def run(quick=False):
    results = {}
    for path in bench_scripts():
        name, figures = run_bench_script(path, quick)
        results[name] = figures
    try:
        results["hook_call_us"] = hook_call_us(5000 if quick else 20000)
        results["session_message_us"] = session_message_us(500 if quick else 2000)
    except Exception as exc:
        results["engine_error"] = "%s: %s" % (type(exc).__name__, exc)
    return results
