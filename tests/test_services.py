"""smtpe.services: the clamd, spamd and HTTP jobs on a real Loop against real peers (clamd
and spamd from Debian, Python's http.server), plus a faulty peer for refused, silent, slow,
garbage and dropped connections. Every job must finish (on_done once) within its timeout."""
import os
import time

import pytest

from smtpe import netclient
from smtpe.services.clamd import ClamdJob
from smtpe.services.http import HttpJob, Url, date_to_seconds
from smtpe.services.spamd import SpamdJob, split_headers
from tests.support.clamd import EICAR, SIGNATURE
from tests.support.faultpeer import FaultPeer
from tests.support.httpserver import DOCUMENT, EXPIRES, LAST_MODIFIED
from tests.support.net import free_port
from tests.support.spamd import GTUBE

HAM = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: lunch\r\n"
       b"Message-ID: <ham.1@example.com>\r\nDate: Wed, 25 Nov 2026 07:00:00 +0000\r\n\r\n"
       b"Hi Bob,\r\nlunch tomorrow at noon?\r\n\r\nAlice\r\n")
SPAM = (b"From: spammer@example.com\r\nTo: bob@example.com\r\nSubject: Test spam mail (GTUBE)\r\n"
        b"Message-ID: <gtube.1@example.com>\r\nDate: Wed, 25 Nov 2026 07:00:00 +0000\r\n\r\n"
        b"This is the GTUBE, the\r\n\tGeneric\r\n\tTest for\r\n\tUnsolicited\r\n\tBulk\r\n"
        b"\tEmail\r\n\r\n" + GTUBE + b"\r\n\r\n")
VIRUS = HAM.replace(b"Alice\r\n", b"Alice\r\n" + EICAR + b"\r\n")


@pytest.fixture
def peer():
    """A factory of faulty peers, all stopped after the test."""
    peers = []

    def make(mode, **kwargs):
        peers.append(FaultPeer(mode, **kwargs).start())
        return peers[-1]
    yield make
    for made in peers:
        made.stop()


def message_file(tmp_path, content, name="message"):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def dead_address():
    return "127.0.0.1:%d" % free_port()


def run(loop, job, limit=15.0):
    """Start `job` and spin the loop until it reports; -> (result, seconds taken)."""
    results = []
    job.on_done = results.append
    started = time.monotonic()
    job.start()
    while not results and time.monotonic() - started < limit:
        loop.run_once(0.05)
    assert len(results) == 1, "job did not finish within %ss" % limit
    for _ in range(3):  # a second on_done would show up here
        loop.run_once(0.01)
    assert len(results) == 1
    return results[0], time.monotonic() - started


# -- clamd -----------------------------------------------------------------------------------
def test_clamd_clean_file_over_tcp_is_scanned_in_place(loop, clamd, tmp_path):
    path = message_file(tmp_path, HAM)
    result, _ = run(loop, ClamdJob(loop, path, ["127.0.0.1:%d" % clamd.port], 10, None))
    assert "error" not in result
    assert result["reply"] == os.fsencode(path) + b": OK\n"  # SCAN names the file
    assert result["is_infected"] is False
    assert result["service_name"] == "clamd"
    assert result["service_host"] == "127.0.0.1:%d" % clamd.port
    assert result["file"] == os.fsencode(path)
    assert isinstance(result["elapsed_time"], float)


def test_clamd_finds_eicar_through_the_unix_socket(loop, clamd, tmp_path):
    path = message_file(tmp_path, VIRUS)
    result, _ = run(loop, ClamdJob(loop, path, [clamd.socket_path], 10, None))
    assert result["is_infected"] is True
    assert result["reply"].endswith(b" FOUND\n") and SIGNATURE.encode() in result["reply"]
    assert result["service_host"] == clamd.socket_path


def _instream(job):
    job.connected_locally = lambda: False  # as if clamd ran on another machine
    return job


def test_clamd_instream_sends_the_file_in_chunks(loop, clamd, tmp_path):
    # Bigger than a chunk, with the signature at the very end: every chunk must arrive.
    path = message_file(tmp_path, HAM + b"x" * 200_000 + b"\r\n" + EICAR + b"\r\n")
    result, _ = run(loop, _instream(ClamdJob(loop, path, ["127.0.0.1:%d" % clamd.port], 10, None)))
    assert result["reply"].startswith(b"stream: ") and result["is_infected"] is True

    clean = message_file(tmp_path, HAM * 5000, "clean")
    result, _ = run(loop, _instream(ClamdJob(loop, clean, ["127.0.0.1:%d" % clamd.port], 10, None)))
    assert result["reply"] == b"stream: OK\n" and result["is_infected"] is False


def test_clamd_gets_a_message_in_memory_without_a_file(loop, clamd, tmp_path):
    """A remote clamd gets the bytes; no file is ever made (make_file is not called)."""
    path = str(tmp_path / "never-written")
    made = []
    job = _instream(ClamdJob(loop, path, ["127.0.0.1:%d" % clamd.port], 10, None,
                             data=bytearray(VIRUS + b"x" * 100_000), make_file=lambda: made.append(1)))
    result, _ = run(loop, job)
    assert result["reply"].startswith(b"stream: ") and result["is_infected"] is True
    assert made == [] and not os.path.exists(path) and result["file"] == os.fsencode(path)


def test_a_local_clamd_has_the_file_written_for_it_when_it_connects(loop, clamd, tmp_path):
    path = str(tmp_path / "spooled")

    def make_file():
        with open(path, "wb") as handle:
            handle.write(VIRUS)
    result, _ = run(loop, ClamdJob(loop, path, [clamd.socket_path], 10, None,
                                   data=VIRUS, make_file=make_file))
    assert result["is_infected"] is True and result["reply"].startswith(os.fsencode(path) + b": ")


def test_a_spool_file_that_cannot_be_written_fails_the_scan(loop, clamd, tmp_path):
    def make_file():
        raise FileNotFoundError(2, "No such file or directory")
    result, _ = run(loop, ClamdJob(loop, str(tmp_path / "x"), [clamd.socket_path], 10, None,
                                   data=VIRUS, make_file=make_file))
    assert result["is_infected"] is False
    assert "writing the spool file: No such file or directory" in result["error"]


def test_clamd_error_reply_is_a_failure_not_a_clean_verdict(loop, clamd, tmp_path):
    missing = str(tmp_path / "vanished")
    result, _ = run(loop, ClamdJob(loop, missing, [clamd.socket_path], 10, None))
    assert result["is_infected"] is False
    assert result["reply"].rstrip().endswith(b"ERROR")
    assert "clamd" in result["error"] and "ERROR" in result["error"]


def test_clamd_fails_over_from_a_dead_host_to_a_live_one(loop, clamd, tmp_path):
    path = message_file(tmp_path, HAM)
    hosts = [dead_address(), "/nonexistent/clamd.sock", "127.0.0.1:%d" % clamd.port]
    result, _ = run(loop, ClamdJob(loop, path, hosts, 10, None))
    assert "error" not in result and result["service_host"] == "127.0.0.1:%d" % clamd.port


# -- faults (the same Job machinery serves all three services) -------------------------------
def test_refused_everywhere_reports_the_failure_at_once(loop, tmp_path):
    path = message_file(tmp_path, HAM)
    result, took = run(loop, ClamdJob(loop, path, [dead_address(), dead_address()], 5, None))
    assert "refused" in result["error"].lower() or "ECONNREFUSED" in result["error"]
    assert result["service_host"] is None and took < 2


def test_no_host_at_all_is_a_failure(loop, tmp_path):
    result, _ = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [], 5, None))
    assert "no host" in result["error"]


def test_silent_peer_times_out_within_the_timeout(loop, peer, tmp_path):
    silent = peer("silent")
    result, took = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [silent.address], 1, None))
    assert "timed out" in result["error"] and result["service_host"] == silent.address
    assert 0.9 <= took < 2.5


def test_slow_peer_answering_after_the_timeout_is_a_failure(loop, peer, tmp_path):
    slow = peer("slow", reply=b"stream: OK\n", delay=3)
    result, took = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [slow.address], 1, None))
    assert "timed out" in result["error"] and took < 2.5


def test_slow_peer_answering_in_time_is_fine(loop, peer, tmp_path):
    slow = peer("slow", reply=b"stream: OK\n", delay=0.5)
    result, _ = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [slow.address], 5, None))
    assert "error" not in result and result["reply"] == b"stream: OK\n"


def test_garbage_reply_is_a_readable_failure(loop, peer, tmp_path):
    garbage = peer("garbage", reply=b"\x00\xffHELLO THERE\n")
    result, _ = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [garbage.address], 5, None))
    assert result["is_infected"] is False and "HELLO THERE" in result["error"]


def test_dropped_connection_is_a_failure(loop, peer, tmp_path):
    dropping = peer("drop", read_bytes=1)
    result, took = run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [dropping.address], 5, None))
    assert result["error"] and took < 2


def test_peer_that_stops_reading_cannot_hold_a_large_upload(loop, peer, tmp_path):
    stalled = peer("stall")
    path = message_file(tmp_path, b"y" * 20_000_000)
    job = _instream(ClamdJob(loop, path, [stalled.address], 1, None))
    result, took = run(loop, job)
    assert "timed out" in result["error"] and took < 2.5


def test_cancel_closes_the_connection_and_reports_nothing(loop, peer, tmp_path):
    silent = peer("silent")
    results = []
    job = ClamdJob(loop, message_file(tmp_path, HAM), [silent.address], 5, results.append).start()
    deadline = time.monotonic() + 5
    while job.stream is None and time.monotonic() < deadline:
        loop.run_once(0.05)
    job.cancel()
    assert job.stream.closed
    for _ in range(10):
        loop.run_once(0.02)
    assert results == []


def test_cancel_while_connecting_stops_the_attempt(loop, tmp_path):
    results = []
    # 10.255.255.1 is normally unroutable: the connect hangs until cancelled.
    job = ClamdJob(loop, message_file(tmp_path, HAM), ["10.255.255.1:3310"], 30, results.append).start()
    job.cancel()
    for _ in range(5):
        loop.run_once(0.02)
    assert results == [] and job.connector is None and loop._writers == {}


def test_stream_write_error_stops_watching_the_socket(loop, peer):
    """netclient fix: a failed send used to leave the fd registered for writing, and an
    errored socket is always writable, so the loop spun until the stream was closed."""
    dropping = peer("drop", read_bytes=1)
    streams = []
    netclient.connect(loop, [dropping.address], None, 5, lambda stream, reason=None: streams.append(stream))
    deadline = time.monotonic() + 5
    while not streams and time.monotonic() < deadline:
        loop.run_once(0.05)
    stream = streams[0]
    stream.write(b"z" * 20_000_000)  # more than the socket buffers: the rest waits for the peer
    while stream.error is None and time.monotonic() < deadline:
        loop.run_once(0.05)
    assert stream.error and stream.fd not in loop._writers and stream.pending_output == 0
    stream.close()


# -- spamd -----------------------------------------------------------------------------------
def spamd_job(loop, spamd, path, method=b"CHECK", **kwargs):
    return SpamdJob(loop, path, ["127.0.0.1:%d" % spamd.port], 30, None, method=method, **kwargs)


def test_spamd_check_gtube_is_spam(loop, spamd, tmp_path):
    result, _ = run(loop, spamd_job(loop, spamd, message_file(tmp_path, SPAM)), 60)
    assert "error" not in result
    assert result["reply"].startswith(b"SPAMD/1.1 0 EX_OK\r\n")
    assert b"Spam: True ; 1000.0 / 5.0" in result["reply"]
    assert result["is_spam"] is True and result["score"] >= 1000 and result["threshold"] == 5.0
    assert result["service_name"] == "spamd" and result["service_host"] == "127.0.0.1:%d" % spamd.port


def test_spamd_check_ham_is_not_spam(loop, spamd, tmp_path):
    result, _ = run(loop, spamd_job(loop, spamd, message_file(tmp_path, HAM)), 60)
    assert result["is_spam"] is False and result["score"] < 5 and "error" not in result


def test_spamd_gets_a_message_in_memory_without_a_file(loop, spamd, tmp_path):
    path = str(tmp_path / "never-written")
    headers, offset = split_headers(SPAM)
    result, _ = run(loop, spamd_job(loop, spamd, path, data=bytearray(SPAM),
                                    headers=headers + [b"X-Added: yes"], body_offset=offset), 60)
    assert "error" not in result and result["is_spam"] is True and result["score"] >= 1000
    assert not os.path.exists(path)


def test_spamd_symbols_report_and_report_ifspam(loop, spamd, tmp_path):
    spam = message_file(tmp_path, SPAM)
    symbols, _ = run(loop, spamd_job(loop, spamd, spam, b"SYMBOLS"), 60)
    assert b"GTUBE" in symbols["reply"].partition(b"\r\n\r\n")[2]
    report, _ = run(loop, spamd_job(loop, spamd, spam, b"REPORT"), 60)
    assert b"Content analysis details" in report["reply"] and report["is_spam"] is True
    # REPORT_IFSPAM says "Spam: Yes", which must count as spam too.
    ifspam, _ = run(loop, spamd_job(loop, spamd, spam, b"REPORT_IFSPAM"), 60)
    assert ifspam["is_spam"] is True and b"GTUBE" in ifspam["reply"]
    quiet, _ = run(loop, spamd_job(loop, spamd, message_file(tmp_path, HAM, "ham"), b"REPORT_IFSPAM"), 60)
    assert quiet["is_spam"] is False and quiet["reply"].endswith(b"\r\n\r\n")


def test_spamd_headers_reports_without_touching_the_file(loop, spamd, tmp_path):
    path = message_file(tmp_path, SPAM)
    result, _ = run(loop, spamd_job(loop, spamd, path, b"HEADERS"), 60)
    assert b"X-Spam-Flag: YES" in result["reply"]
    assert open(path, "rb").read() == SPAM


def test_spamd_process_replaces_the_spool_file(loop, spamd, tmp_path):
    path = message_file(tmp_path, SPAM)
    processed = []
    job = spamd_job(loop, spamd, path, b"PROCESS", return_path=b"spammer@example.com",
                    on_processed=lambda headers, offset: processed.append((headers, offset)))
    result, _ = run(loop, job, 60)
    assert "error" not in result and result["is_spam"] is True
    rewritten = open(path, "rb").read()
    assert b"X-Spam-Flag: YES\r\n" in rewritten and b"Subject: Test spam mail (GTUBE)" in rewritten
    assert b"Return-Path:" not in rewritten  # envelope data is not sent for PROCESS
    assert GTUBE in rewritten.partition(b"\r\n\r\n")[2]
    assert result["reply"].endswith(b"\r\n\r\n") and b"X-Spam-Flag" not in result["reply"]
    headers, offset = processed[0]
    assert any(h.startswith(b"X-Spam-Status: Yes") for h in headers)
    assert (headers, offset) == split_headers(rewritten)
    assert not os.path.exists(path + ".spamd")


def test_spamd_process_sends_the_edited_header_list(loop, spamd, tmp_path):
    path = message_file(tmp_path, HAM)
    headers, offset = split_headers(HAM)
    edited = [h for h in headers if not h.startswith(b"Subject:")] + [b"X-Edited: by header.add"]
    result, _ = run(loop, spamd_job(loop, spamd, path, b"PROCESS", headers=edited, body_offset=offset), 60)
    assert "error" not in result
    rewritten = open(path, "rb").read()
    assert b"X-Edited: by header.add\r\n" in rewritten and b"Subject: lunch" not in rewritten
    assert rewritten.endswith(HAM[offset:])


def test_spamd_content_length_is_exact(loop, peer, tmp_path):
    path = message_file(tmp_path, HAM)
    headers, offset = split_headers(HAM)
    capture = peer("garbage", read_bytes=10_000, reply=b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.1 / 5.0\r\n\r\n")
    for kwargs in ({}, {"return_path": b"a@example.com"},
                   {"headers": headers + [b"X-Added: yes"], "body_offset": offset, "return_path": b""}):
        capture.received.clear()
        job = SpamdJob(loop, path, [capture.address], 5, None, user=b"bob", **kwargs)
        capture.read_bytes = job.length + 200  # the request head is shorter than 200 bytes
        result, _ = run(loop, job)
        assert result["is_spam"] is False and "error" not in result
        head, _, message = bytes(capture.received).partition(b"\r\n\r\n")
        assert head.startswith(b"CHECK SPAMC/1.5\r\n") and b"\r\nUser: bob" in head
        assert b"Content-length: %d" % len(message) in head
    assert message.startswith(b"Return-Path: <>\r\n") and b"X-Added: yes\r\n\r\n" in message


def test_spamd_incomplete_process_reply_leaves_the_message_alone(loop, peer, tmp_path):
    path = message_file(tmp_path, HAM)
    short = peer("garbage", read_bytes=len(HAM) + 50,
                 reply=b"SPAMD/1.1 0 EX_OK\r\nContent-length: 5000\r\nSpam: False ; 0 / 5\r\n\r\nFrom: x\r\n")
    result, _ = run(loop, SpamdJob(loop, path, [short.address], 5, None, method=b"PROCESS"))
    assert "incomplete" in result["error"] and open(path, "rb").read() == HAM


def test_spamd_error_status_and_garbage_are_failures(loop, peer, tmp_path):
    path = message_file(tmp_path, HAM)
    refusing = peer("garbage", read_bytes=len(HAM) + 50, reply=b"SPAMD/1.0 76 Bad header line\r\n")
    result, _ = run(loop, SpamdJob(loop, path, [refusing.address], 5, None))
    assert "76 Bad header line" in result["error"]
    # (it reads the whole request, up to the client's end of sending, first: closing with
    # input unread would reset the connection, and the client could see the reset first)
    noise = peer("garbage", read_bytes=1 << 30, reply=b"220 smtp.example.com ESMTP\r\n")
    result, _ = run(loop, SpamdJob(loop, path, [noise.address], 5, None))
    assert "not a spamd reply" in result["error"]


def test_spamd_unknown_method_is_refused(loop, tmp_path):
    with pytest.raises(ValueError):
        SpamdJob(loop, message_file(tmp_path, HAM), ["127.0.0.1"], 5, None, method=b"TELL")


def test_split_headers_keeps_folds_and_finds_the_body():
    message = b"A: 1\r\nB: two\r\n\tlines\r\nC: 3\r\n\r\nbody\r\n"
    assert split_headers(message) == ([b"A: 1", b"B: two\r\n\tlines", b"C: 3"], len(message) - 6)
    assert split_headers(b"A: 1\r\nB: 2\r\n") == ([b"A: 1", b"B: 2"], 12)


# -- HTTP ------------------------------------------------------------------------------------
def test_http_get_fills_every_result_field(loop, web):
    result, _ = run(loop, HttpJob(loop, web.url("/doc"), None, method=b"GET", ident=b"abc123"))
    assert "error" not in result
    assert result["rcode"] == 200 and result["content"] == DOCUMENT
    assert result["headers"].startswith(b"HTTP/1.0 200 OK\r\n") and result["headers"].endswith(b"\r\n")
    assert b"\r\n\r\n" not in result["headers"]
    assert result["last_modified"] == LAST_MODIFIED and result["expires"] == EXPIRES
    assert abs(result["date"] - time.time()) < 60
    assert result["content_type"] == b"text/plain; charset=us-ascii"
    assert result["content_encoding"] == b"identity"
    assert result["url"] == web.url("/doc") and result["id"] == b"abc123"
    assert result["service_name"] == "http" and result["service_host"] == "127.0.0.1"
    method, target, headers, _ = web.requests[-1]
    assert (method, target) == ("GET", "/doc") and headers["Host"] == "127.0.0.1:%d" % web.port


def test_http_head_is_the_default_and_has_no_content(loop, web):
    result, _ = run(loop, HttpJob(loop, web.url("/doc"), None))
    assert result["rcode"] == 200 and result["content"] == b""
    assert web.requests[-1][0] == "HEAD"


def test_http_if_modified_since_gives_304(loop, web):
    result, _ = run(loop, HttpJob(loop, web.url("/doc"), None, method=b"GET", modified_since=LAST_MODIFIED))
    assert result["rcode"] == 304 and result["content"] == b""
    assert web.requests[-1][2]["If-Modified-Since"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    older, _ = run(loop, HttpJob(loop, web.url("/doc"), None, method=b"GET", modified_since=LAST_MODIFIED - 1))
    assert older["rcode"] == 200


def test_http_post_sends_the_body(loop, web):
    result, _ = run(loop, HttpJob(loop, web.url("/echo"), None, method=b"POST", post=b"a=1&b=\x00two"))
    assert result["rcode"] == 200 and result["content"] == b"a=1&b=\x00two"
    assert b"X-Method: POST" in result["headers"]
    assert b"X-Request-Type: application/x-www-form-urlencoded" in result["headers"]


def test_http_status_codes_are_reported_not_followed(loop, web):
    missing, _ = run(loop, HttpJob(loop, web.url("/missing"), None, method=b"GET"))
    assert missing["rcode"] == 404 and "error" not in missing
    moved, _ = run(loop, HttpJob(loop, web.url("/redirect"), None))
    assert moved["rcode"] == 302 and b"Location: /doc" in moved["headers"]


def test_http_chunked_reply_is_decoded(loop, peer):
    chunked = peer("garbage", reply=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                    b"Content-Type: text/plain\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n")
    result, _ = run(loop, HttpJob(loop, ("http://%s/x" % chunked.address).encode(), None, method=b"GET"))
    assert result["content"] == b"hello, world" and result["content_type"] == b"text/plain"
    assert result["date"] is None and result["last_modified"] is None


def test_http_failures_are_readable(loop, peer):
    refused, took = run(loop, HttpJob(loop, ("http://%s/" % dead_address()).encode(), None))
    assert refused["error"] and refused.get("rcode") is None and took < 2
    silent = peer("silent")
    quiet, took = run(loop, HttpJob(loop, ("http://%s/" % silent.address).encode(), None, timeout=1))
    assert "timed out" in quiet["error"] and took < 2.5
    garbage = peer("garbage", reply=b"SSH-2.0-OpenSSH_9.2\r\n")
    noise, _ = run(loop, HttpJob(loop, ("http://%s/" % garbage.address).encode(), None))
    assert "not an HTTP reply" in noise["error"]


def test_http_urls_and_dates():
    url = Url(b"http://user:pw@Example.COM:8080/a/b?q=1#frag")
    assert (url.address, url.host_header, url.target) == ("example.com:8080", b"Example.COM:8080", b"/a/b?q=1")
    assert Url(b"http://[::1]/").address == "[::1]:80" and Url(b"http://h").target == b"/"
    for bad in (b"https://example.com/", b"ftp://x/", b"example.com", b"http:///path", b"http://h:99999/"):
        with pytest.raises(ValueError):
            Url(bad)
    assert date_to_seconds(b"Tue, 14 Nov 2023 22:13:20 GMT") == LAST_MODIFIED
    assert date_to_seconds(b"Tue, 14 Nov 2023 23:13:20 +0100") == LAST_MODIFIED
    assert date_to_seconds(b"Tue Nov 14 22:13:20 2023") == LAST_MODIFIED  # ctime(): GMT
    with pytest.raises(ValueError):
        date_to_seconds(b"yesterday")


def test_http_job_refuses_unknown_methods(loop):
    with pytest.raises(ValueError):
        HttpJob(loop, b"http://127.0.0.1/", None, method=b"DELETE")


def test_loop_is_left_clean_after_jobs(loop, web, peer, tmp_path):
    """No reader, writer or socket of a finished job stays registered."""
    run(loop, HttpJob(loop, web.url("/doc"), None, method=b"GET"))
    silent = peer("silent")
    run(loop, ClamdJob(loop, message_file(tmp_path, HAM), [silent.address], 0.5, None))
    assert loop._readers == {} and loop._writers == {}
