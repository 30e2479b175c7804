"""Speed of the text and iXhash hot paths (smtpe._speedups.textfind, smtpe._speedups.ixhash)
against their plain-Python statements in tests/reference/. Not a test: it asserts nothing
about time; it prints the figures and returns them as a dict.

    python tests/perf/bench_text.py

Measures: iXhash 1/2/3 digests in MB/s over a 100 KB body, the three conditions together in
MB/s, text.find calls per second for a 30-byte pattern against 1 KB, natcmp and split calls
per second, and for each the ratio of the Cython speed to the plain-Python one.
"""
import os
import sys
import time

if __name__ == "__main__":   # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe._speedups import ixhash, textfind  # noqa: E402
from tests.reference import ixhash_ref, textfind_ref  # noqa: E402

MIN_SECONDS = 0.3            # per measurement; enough for stable figures on a shared machine


def rate(function, *args):
    """Calls per second of function(*args), timed over at least MIN_SECONDS."""
    calls, started = 0, time.perf_counter()
    batch = 1
    while True:
        for _ in range(batch):
            function(*args)
        calls += batch
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            return calls / elapsed
        batch *= 2


def mail_body(size):
    """A deterministic, mail-like body: HTML, prose, punctuation, URLs, CRLF lines."""
    words = (b"Dear customer, your account <b>needs</b> attention! Visit "
             b"http://example.com/verify?id=12345 now (limited offer) or call +1-555-0100. "
             b"Best   regards,\t the_team @ example.org; 100% free & no risk = win?\r\n").split(b" ")
    out, index = bytearray(), 0
    while len(out) < size:
        out += words[index % len(words)] + (b"\r\n" if index % 13 == 12 else b" ")
        index += 1
    return bytes(out[:size])


def reference_digest(method, body):
    return ixhash_ref.stream_digest(method, [body])


def reference_conditions(body):
    return ixhash_ref.use_ixhash1(body), ixhash_ref.use_ixhash2(body), ixhash_ref.use_ixhash3(body)


def cython_conditions(body):
    return ixhash.use_ixhash1(body), ixhash.use_ixhash2(body), ixhash.use_ixhash3(body)


def run():
    results = {}
    body = mail_body(100 * 1024)
    megabytes = len(body) / 1e6
    for method in (1, 2, 3):
        assert ixhash.ixhash_hexdigest(method, body) == reference_digest(method, body)
        fast = rate(ixhash.ixhash_hexdigest, method, body) * megabytes
        slow = rate(reference_digest, method, body) * megabytes
        results["ixhash%d_MBps" % method] = fast
        results["ixhash%d_python_MBps" % method] = slow
        results["ixhash%d_ratio" % method] = fast / slow
    fast = rate(cython_conditions, body) * megabytes
    slow = rate(reference_conditions, body) * megabytes
    results.update(conditions_MBps=fast, conditions_python_MBps=slow, conditions_ratio=fast / slow)

    pattern = b"*please click here to confirm*"
    assert len(pattern) == 30
    phrase = pattern.strip(b"*")
    haystack = mail_body(1024 - len(phrase)) + phrase      # found at the very end of 1 KB
    assert textfind.find(haystack, pattern) == textfind_ref.find(haystack, pattern) == 1024 - len(phrase)
    fast, slow = rate(textfind.find, haystack, pattern), rate(textfind_ref.find, haystack, pattern)
    results.update(find_calls_per_s=fast, find_python_calls_per_s=slow, find_ratio=fast / slow)

    pairs = [(b"mail-2024-10-3.log", b"mail-2024-10-12.log"), (b"x2-y08", b"x2-y7"),
             (b"File 10.txt", b"file9.txt")]

    def natcmp_all(compare):
        for first, second in pairs:
            compare(first, second, True)

    fast, slow = rate(natcmp_all, textfind.natcmp), rate(natcmp_all, textfind_ref.natcmp)
    results.update(natcmp_calls_per_s=fast * len(pairs), natcmp_python_calls_per_s=slow * len(pairs),
                   natcmp_ratio=fast / slow)

    line = b"key=value; name=\"John Smith\"; path='C:\\\\mail\\\\in'; flags=a\\,b; tail"
    fast, slow = rate(textfind.split, line, b"; "), rate(textfind_ref.split, line, b"; ")
    results.update(split_calls_per_s=fast, split_python_calls_per_s=slow, split_ratio=fast / slow)
    return results


def report(results):
    rows = [("iXhash 1", "ixhash1", "MB/s", "_MBps"), ("iXhash 2", "ixhash2", "MB/s", "_MBps"),
            ("iXhash 3", "ixhash3", "MB/s", "_MBps"), ("use_ixhash1-3", "conditions", "MB/s", "_MBps"),
            ("text.find 30B/1KB", "find", "calls/s", "_calls_per_s"),
            ("text.natcmp", "natcmp", "calls/s", "_calls_per_s"),
            ("text.split", "split", "calls/s", "_calls_per_s")]
    print("%-18s %14s %14s %8s" % ("routine", "Cython", "plain Python", "ratio"))
    for label, key, unit, suffix in rows:
        fast = results[key + suffix]
        slow = results[key + "_python" + suffix]
        print("%-18s %10.1f %-4s %10.1f %-4s %7.1fx" % (
            label, fast, unit[:4], slow, unit[:4], results[key + "_ratio"]))


if __name__ == "__main__":
    figures = run()
    report(figures)
