"""Speed of the message scanner (smtpe._speedups.scanner.MessageScanner) against its
plain-Python statement (tests/reference/scanner_ref.py). Not a test: it asserts nothing
about time; it prints the figures and returns them as a dict.

    python tests/perf/bench_scanner.py

Messages (deterministic), fed in 64 KB chunks as the session does:
* plain: a 100 KB text/plain message (headers, prose, CRLF lines);
* base64: a multipart message with a short text part and a 1 MB base64 attachment;
* html: 1 MB of text/html with 500 links.
Targets: > 150 MB/s plain, > 60 MB/s base64 and html.
"""
import base64
import os
import random
import sys
import time

if __name__ == "__main__":   # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from smtpe._speedups.scanner import MessageScanner  # noqa: E402
from tests.reference import scanner_ref  # noqa: E402

MIN_SECONDS = 0.5            # per measurement; enough for stable figures on a shared machine
CHUNK = 65536
HEADERS = (b"Received: from mx.example.net (mx.example.net [192.0.2.1])\r\n\tby smtpe; Mon, 1 Jan 2024\r\n"
           b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: benchmark\r\n"
           b"Message-ID: <1234@example.com>\r\nMIME-Version: 1.0\r\n")
WORDS = (b"Dear customer, your account needs attention. We reviewed the report from "
         b"10.30 yesterday and found 3 issues; please call us (or reply) before Friday! "
         b"Best regards, the team at example.com").split(b" ")


def prose(size, seed):
    """CRLF lines of mail-like words."""
    pick = random.Random(seed).choice
    out = bytearray()
    while len(out) < size:
        out += b" ".join(pick(WORDS) for _ in range(11)) + b"\r\n"
    return bytes(out[:size])


def plain_message():
    return HEADERS + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + prose(100 * 1024, 1)


def base64_message():
    attachment = base64.encodebytes(random.Random(2).randbytes(1 << 20)).replace(b"\n", b"\r\n")
    return (HEADERS + b'Content-Type: multipart/mixed; boundary="=_b"\r\n\r\n'
            b"This is a multi-part message in MIME format.\r\n"
            b"--=_b\r\nContent-Type: text/plain\r\n\r\n" + prose(2000, 3) + b"\r\n"
            b'--=_b\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment + b"--=_b--\r\n")


def html_message():
    body = bytearray(b"<html><head><style>p { color: #333; font-family: Arial; }</style></head><body>\r\n")
    link = 0
    paragraph = 1_000_000 // 500
    while link < 500:
        text = prose(paragraph - 120, 100 + link).replace(b"\r\n", b"<br>\r\n")
        body += b'<p style="margin:0;padding:4px">' + text + b"</p>\r\n"
        body += (b'<a href="http://www.site%d.example.com/path/page%d.html?id=%d&amp;ref=mail">link&nbsp;%d</a>\r\n'
                 % (link % 50, link, link, link))
        link += 1
    body += b"</body></html>\r\n"
    return HEADERS + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + bytes(body)


def scan_cython(message):
    scanner = MessageScanner()
    for start in range(0, len(message), CHUNK):
        scanner.feed(message[start:start + CHUNK])
    scanner.finish()
    return scanner


def megabytes_per_second(function, message, min_seconds=MIN_SECONDS):
    runs, started = 0, time.perf_counter()
    while True:
        function(message)
        runs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return runs * len(message) / elapsed / 1e6


def run():
    results = {}
    for name, make in (("plain", plain_message), ("base64", base64_message), ("html", html_message)):
        message = make()
        scanner = scan_cython(message)
        expected = scanner_ref.scan(message)
        assert (scanner.parts, scanner.uris) == (expected["parts"], expected["uris"])
        if name == "html":
            assert len({entry["uri_raw"] for entry in scanner.uris if entry["uri_raw"].startswith(b"http:")}) == 500
        fast = megabytes_per_second(scan_cython, message)
        slow = megabytes_per_second(scanner_ref.scan, message, min_seconds=0.1)
        results["%s_MBps" % name] = fast
        results["%s_python_MBps" % name] = slow
        results["%s_ratio" % name] = fast / slow
        results["%s_bytes" % name] = len(message)
    return results


def report(results):
    print("%-8s %10s %12s %14s %8s" % ("message", "size", "Cython", "plain Python", "ratio"))
    for name in ("plain", "base64", "html"):
        print("%-8s %10d %7.1f MB/s %9.2f MB/s %7.0fx" % (
            name, results[name + "_bytes"], results[name + "_MBps"], results[name + "_python_MBps"],
            results[name + "_ratio"]))


if __name__ == "__main__":
    figures = run()
    report(figures)
