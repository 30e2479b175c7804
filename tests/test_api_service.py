"""Lua `service.*` through the real engine (smtpe.engine.Engine, lupa's Lua 5.1) on a real
Loop, against real clamd/spamd/HTTP peers, with a small stand-in for the SMTP session that
writes service.client.write bytes to a real socketpair."""
import io
import os
import socket
import time

import pytest

from smtpe.api import service as service_api
from smtpe.engine import Engine
from smtpe.log import Log
from smtpe._speedups.loop import Loop
from smtpe.netclient import Stream
from smtpe.options import Options
from smtpe.services.clamd import ClamdJob
from smtpe.services.spamd import SpamdJob, split_headers
from tests.support.clamd import EICAR
from tests.support.faultpeer import FaultPeer
from tests.support.httpserver import LAST_MODIFIED
from tests.support.net import free_port
from tests.support.spamd import GTUBE

SCRIPT = rb"""
function hook.scan_all(path, clamd_hosts, spamd_hosts, url)
    local started = {
        service.clamd(path, clamd_hosts, 10),
        service.spamd(path, { spamd_hosts }, "CHECK", nil, 30),
        service.http.request(url, "GET"),
        service.http.request(url),
    }
    return started, service.wait(1)
end

function hook.first_then_rest(url, silent_host)
    service.clamd(client.msg_file, silent_host, 1)
    service.http.request(url, "GET")
    local first = service.wait(0)
    local rest = service.wait(1)
    return first, rest, service.wait(1)
end

function hook.wait_only(all)
    return service.wait(all)
end

function hook.start_clamd(path, hosts, timeout)
    return service.clamd(path, hosts, timeout)
end

function hook.reset_then_wait(path, hosts)
    service.clamd(path, hosts, 10)
    service.reset()
    return service.wait(1)
end

function hook.writes(first, second, timeout)
    local a = service.client.write(first, timeout)
    local b = service.client.write(second, timeout)
    return a, b, service.wait(1)
end

function hook.process(hosts)
    header.add("X-Policy: checked")
    local ok = service.spamd(client.msg_file, hosts, "PROCESS")
    return ok, service.wait(1)
end

function hook.conditional(url, since)
    service.http.request(url, "GET", since)
    return service.wait(1)
end

function hook.bad_arguments(path, url)
    return service.clamd(nil), service.clamd(path .. ".missing"),
        service.spamd(path, nil, "TELL"), service.http.request("https://example.com/"),
        service.http.request(url, "DELETE"), service.http.request(url, "GET", "not a date"),
        service.clamd(path, {}), service.wait(1)
end

function hook.codes()
    local c = service.http.code
    return c.OK, c.NOT_MODIFIED, c.INTERNAL, c.GO, c.DROP, c[404], c[200]
end

LOADED_HOSTS = { "127.0.0.1:1", "127.0.0.1:2" }  -- built at load time, in the master state

function hook.loaded_table(path)
    service.clamd(path, LOADED_HOSTS, 2)
    return service.wait(1)
end

function hook.spamd_default(path, method)
    service.spamd(path, "127.0.0.1:1", method)
    return service.wait(1)
end
"""

HAM = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: lunch\r\n"
       b"Message-ID: <ham.2@example.com>\r\nDate: Wed, 25 Nov 2026 07:00:00 +0000\r\n\r\n"
       b"Hi Bob,\r\nlunch tomorrow?\r\n")


class Transaction:
    def __init__(self, sender, spool_path):
        self.sender = sender
        self.spool_path = spool_path


def own_spool(ctx, path, sender=None):
    """Make `path` this connection's spool file, as the session does at DATA."""
    ctx.client[b"msg_file"] = path
    ctx.session.transaction = Transaction(sender, path.decode())


class StandInSession:
    """The part of smtpe.session.Session that service.* uses."""

    def __init__(self, loop):
        self.loop = loop
        self.ident = "svc-test"
        self.transaction = None
        self.spool = None
        ours, self.client_end = socket.socketpair()
        ours.setblocking(False)
        self.client_end.settimeout(5)
        self.stream = Stream(loop, ours, "client")

    def write_raw(self, data, timeout, on_done):
        state = {}

        def finished(ok):
            if state.pop("timer", None) is not None:
                on_done(ok)

        def expired():
            if state.get("timer") is not None:
                del state["timer"]
                on_done(False)
        state["timer"] = self.loop.call_later(timeout, expired)
        self.stream.write(data, on_drained=lambda: finished(True))

    def close(self):
        self.stream.close()
        self.client_end.close()


@pytest.fixture
def silent():
    peer = FaultPeer("silent").start()
    yield peer
    peer.stop()


@pytest.fixture
def engine(tmp_path):
    script = tmp_path / "policy.lua"
    script.write_bytes(SCRIPT)
    log_stream = io.StringIO()
    engine = Engine(Options(), Loop(), Log(stream=log_stream), script=str(script))
    engine.log_stream = log_stream
    yield engine
    engine.loop.close()


@pytest.fixture
def ctx(engine):
    session = StandInSession(engine.loop)
    ctx = engine.new_context(session=session)
    yield ctx
    ctx.close()
    session.close()


def run_hook(engine, ctx, name, *args, limit=30.0):
    """Run hook.<name>(*args) to completion on the loop; -> (values, seconds taken)."""
    outcomes = []
    started = time.monotonic()
    engine.run_hook(ctx, name, args, outcomes.append)
    while not outcomes and time.monotonic() - started < limit:
        engine.loop.run_once(0.05)
    assert outcomes, "hook.%s did not finish within %ss" % (name, limit)
    assert outcomes[0].error is None, outcomes[0].error
    return outcomes[0].values, time.monotonic() - started


def spool(tmp_path, content):
    path = tmp_path / "spool-message"
    path.write_bytes(content)
    return os.fsencode(str(path))


def test_wait_all_collects_clamd_spamd_and_http(engine, ctx, clamd, spamd, web, tmp_path):
    path = spool(tmp_path, HAM.replace(b"lunch tomorrow?", EICAR + b"\r\n" + GTUBE))
    spamd_host = ("127.0.0.1:%d" % spamd.port).encode()
    (started, results), _ = run_hook(engine, ctx, "scan_all", path, clamd.socket_path.encode(),
                                     spamd_host, web.url("/doc"))
    assert list(started.values()) == [True, True, True, True]
    scan = results[b"clamd"]
    assert scan[b"is_infected"] is True and scan[b"reply"].endswith(b" FOUND\n")
    assert scan[b"service_name"] == b"clamd" and scan[b"service_host"] == clamd.socket_path.encode()
    assert scan[b"file"] == path and isinstance(scan[b"elapsed_time"], float)
    check = results[b"spamd"]
    assert check[b"is_spam"] is True and check[b"reply"].startswith(b"SPAMD/1.1 0 EX_OK")
    assert check[b"service_host"] == spamd_host and check[b"service_name"] == b"spamd"
    pages = results[b"http"]
    assert pages[b"service_name"] == b"http" and len(pages) == 2
    assert sorted(pages[i][b"rcode"] for i in (1, 2)) == [200, 200]
    assert {pages[i][b"content"] for i in (1, 2)} == {b"", b"policy data\r\nline two\r\n"}
    assert pages[1][b"id"] == b"svc-test" and pages[1][b"last_modified"] == LAST_MODIFIED
    assert pages[1][b"service_name"] == b"http" and pages[1][b"service_host"] == b"127.0.0.1"


def test_wait_any_returns_at_the_first_completion(engine, ctx, web, silent, tmp_path):
    ctx.client[b"msg_file"] = spool(tmp_path, HAM)
    (first, rest, last), took = run_hook(engine, ctx, "first_then_rest", web.url("/doc"),
                                         silent.address.encode())
    assert first[b"http"][1][b"rcode"] == 200 and first[b"clamd"] is None
    assert b"timed out" in rest[b"clamd"][b"error"] and rest[b"http"] is None
    assert rest[b"clamd"][b"is_infected"] is False
    assert last is None
    assert 0.9 <= took < 3


def test_wait_with_nothing_pending_returns_nil_at_once(engine, ctx):
    values, took = run_hook(engine, ctx, "wait_only", 1)
    assert values == (None,) and took < 0.5
    values, _ = run_hook(engine, ctx, "wait_only", 0)
    assert values == (None,)


def test_results_of_jobs_finished_in_an_earlier_hook_wait_for_the_next_wait(engine, ctx, clamd, tmp_path):
    path = spool(tmp_path, HAM)
    values, _ = run_hook(engine, ctx, "start_clamd", path, clamd.socket_path.encode(), 10)
    assert values == (True,)
    deadline = time.monotonic() + 10
    while ctx.services.pending and time.monotonic() < deadline:
        engine.loop.run_once(0.05)
    (results,), took = run_hook(engine, ctx, "wait_only", False)
    assert results[b"clamd"][b"reply"] == path + b": OK\n" and took < 0.5


def test_failed_job_resumes_the_waiting_hook_with_its_error(engine, ctx, tmp_path):
    dead = "127.0.0.1:%d" % free_port()
    values, _ = run_hook(engine, ctx, "start_clamd", spool(tmp_path, HAM), dead.encode(), 5)
    assert values == (True,)
    (results,), took = run_hook(engine, ctx, "wait_only", 1)
    entry = results[b"clamd"]
    assert dead.encode() in entry[b"error"] and entry[b"service_host"] is None and took < 2
    assert "service clamd: %s" % dead in engine.log_stream.getvalue()


def test_default_spamd_host_and_failure_entry(engine, ctx, tmp_path):
    (results,), _ = run_hook(engine, ctx, "spamd_default", spool(tmp_path, HAM), None)
    assert b"127.0.0.1:1" in results[b"spamd"][b"error"] and results[b"spamd"][b"is_spam"] is False


def test_host_list_from_a_table_built_at_load_time(engine, ctx, tmp_path):
    (results,), _ = run_hook(engine, ctx, "loaded_table", spool(tmp_path, HAM))
    assert b"127.0.0.1:2" in results[b"clamd"][b"error"]  # both hosts were tried, in order


def test_defaults_are_the_standard_local_ports():
    assert service_api.DEFAULT_HOSTS == ["127.0.0.1"]
    assert (ClamdJob.default_port, SpamdJob.default_port) == (3310, 783)
    assert service_api._seconds(None, 120.0) == 120.0 and service_api._seconds(30, 120.0) == 30.0


def test_reset_abandons_jobs_and_results(engine, ctx, silent, tmp_path):
    values, took = run_hook(engine, ctx, "reset_then_wait", spool(tmp_path, HAM), silent.address.encode())
    assert values == (None,) and took < 0.5
    assert not ctx.services.pending
    for _ in range(5):
        engine.loop.run_once(0.02)
    assert engine.loop._readers == {} or list(engine.loop._readers) == [ctx.session.stream.fd]


def test_closing_the_connection_cancels_a_waiting_hook_and_its_jobs(engine, ctx, silent, tmp_path):
    outcomes = []
    ctx.client[b"msg_file"] = spool(tmp_path, HAM)
    engine.run_hook(ctx, "first_then_rest", (b"http://%s/" % silent.address.encode(),
                                             silent.address.encode()), outcomes.append)
    deadline = time.monotonic() + 5
    while silent.connections < 2 and time.monotonic() < deadline:
        engine.loop.run_once(0.05)
    jobs = list(ctx.services.pending)
    assert len(jobs) == 2
    ctx.close()
    assert all(job.finished for job in jobs) and not ctx.services.pending
    assert all(job.stream is None or job.stream.closed for job in jobs)
    for _ in range(5):
        engine.loop.run_once(0.02)
    assert outcomes == []


def test_client_write_sends_bytes_to_the_client_and_records_no_result(engine, ctx):
    values, _ = run_hook(engine, ctx, "writes", b"250-first\r\n", b"250-second\r\n", 5)
    assert values == (True, True, None)
    received = b""
    while len(received) < 23:
        received += ctx.session.client_end.recv(100)
    assert received == b"250-first\r\n250-second\r\n"


def test_client_write_that_cannot_drain_times_out_and_resumes(engine, ctx):
    big = b"x" * 8_000_000  # far beyond the socket buffers; the client never reads
    values, took = run_hook(engine, ctx, "writes", big, b"more", 1)
    assert values == (True, True, None) and 0.9 <= took < 3
    assert "client write failed or timed out" in engine.log_stream.getvalue()


def test_client_write_without_a_session_is_false(engine):
    ctx = engine.new_context(session=None)
    values, _ = run_hook(engine, ctx, "writes", b"a", b"b", 1)
    assert values == (False, False, None)


def test_http_conditional_request_from_lua(engine, ctx, web):
    (results,), _ = run_hook(engine, ctx, "conditional", web.url("/doc"), LAST_MODIFIED)
    assert results[b"http"][1][b"rcode"] == 304
    (results,), _ = run_hook(engine, ctx, "conditional", web.url("/doc"), b"Tue, 14 Nov 2023 22:13:20 GMT")
    assert results[b"http"][1][b"rcode"] == 304
    (results,), _ = run_hook(engine, ctx, "conditional", web.url("/doc"), b"Mon Nov 13 22:13:20 2023")
    assert results[b"http"][1][b"rcode"] == 200
    (results,), _ = run_hook(engine, ctx, "conditional", web.url("/doc"), 0)
    assert results[b"http"][1][b"rcode"] == 200
    assert "If-Modified-Since" not in web.requests[-1][2]


def test_bad_arguments_return_false_and_start_nothing(engine, ctx, web, tmp_path):
    values, _ = run_hook(engine, ctx, "bad_arguments", spool(tmp_path, HAM), web.url("/doc"))
    assert values == (False,) * 7 + (None,)


def test_http_code_table_and_reverse_map(engine, ctx):
    values, _ = run_hook(engine, ctx, "codes")
    assert values == (200, 304, 500, 0, 10, b"NOT_FOUND", b"OK")


def test_spamd_process_rewrites_the_spool_and_the_header_list(engine, ctx, spamd, tmp_path):
    path = spool(tmp_path, HAM)
    headers, offset = split_headers(HAM)
    own_spool(ctx, path)
    ctx.headers[:] = headers
    ctx.body_offset = offset
    (ok, results), _ = run_hook(engine, ctx, "process", ("127.0.0.1:%d" % spamd.port).encode(), limit=60)
    assert ok is True and results[b"spamd"][b"error"] is None
    rewritten = open(path, "rb").read()
    assert b"X-Policy: checked\r\n" in rewritten and b"X-Spam-Status: No" in rewritten
    assert (ctx.headers, ctx.body_offset) == split_headers(rewritten)
    assert ctx.headers_dirty is False
    assert rewritten[ctx.body_offset:] == HAM[offset:]


def test_spamd_process_is_refused_while_the_message_is_being_spooled(engine, ctx, tmp_path):
    class OpenSpool:
        writing = True
        on_disk = True
    ctx.session.spool = OpenSpool()
    own_spool(ctx, spool(tmp_path, HAM))
    outcomes = []
    engine.run_hook(ctx, "process", (b"127.0.0.1:1",), outcomes.append)
    assert outcomes and "PROCESS needs the complete message" in outcomes[0].error
    assert open(ctx.client[b"msg_file"], "rb").read() == HAM


def test_spamd_sends_the_envelope_sender_and_edited_headers(engine, ctx, tmp_path):
    reply = b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 0.0 / 5.0\r\n\r\n"
    capture = FaultPeer("garbage", read_bytes=len(HAM) + 300, reply=reply).start()
    try:
        path = spool(tmp_path, HAM)
        own_spool(ctx, path, sender=b"alice@example.com")
        headers, offset = split_headers(HAM)
        ctx.headers[:] = headers + [b"X-Edited: yes"]
        ctx.body_offset = offset
        engine.lua.execute(b"function hook.check(h) service.spamd(client.msg_file, h) return service.wait(1) end")
        (results,), _ = run_hook(engine, ctx, "check", capture.address.encode())
        assert results[b"spamd"][b"is_spam"] is False
        head, _, message = bytes(capture.received).partition(b"\r\n\r\n")
        assert message.startswith(b"Return-Path: <alice@example.com>\r\nFrom: Alice")
        assert b"X-Edited: yes\r\n\r\nHi Bob" in message
        assert b"Content-length: %d" % len(message) in head
    finally:
        capture.stop()
