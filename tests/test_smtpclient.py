"""The smart-host client (smtpe/_speedups/smtpclient.pyx) against real peers: Postfix
smtp-sink (a real server, its own process) and the recording sink (a thread, for byte-exact wire checks and faults on demand)."""
import hashlib
import os
import socket
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpe._speedups.loop import Loop
from smtpe._speedups.smtpclient import (ERROR, ERROR_EOF, ERROR_IO, ERROR_TIMEOUT, NO_HOST, Timeouts,
                              WireEncoder, close_idle, send_mail)
from tests.support.smtpsink import RecordingSink, SmtpSink

pytestmark = pytest.mark.timeout(120)

FAST = Timeouts(connect=2.0, command=0.6, dot=0.6)     # for the faults: fail quickly
PATIENT = Timeouts(connect=5.0, command=30.0, dot=60.0)

MESSAGE = (b"From: a@x.org\r\nSubject: exact\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
           b"nul \x00 and 8-bit \xe9\xff\r\n \r\nlast line\r\n")


def deliver(hosts, source, recipients=(b"b@y.org",), sender=b"a@x.org", timeouts=PATIENT,
            pipelining=True, limit=60.0, loop=None):
    """Run one send_mail until it reports; -> (result, seconds taken). Keeps turning the loop
    a little longer to prove on_done comes exactly once. Without a `loop` given it runs on
    its own one, and then closes the pooled connection (QUIT) as a worker's drain does."""
    own_loop = loop is None
    loop = loop or Loop()
    results = []
    started = time.monotonic()
    send_mail(loop, hosts, sender, list(recipients), source, timeouts, "client.test", results.append,
              pipelining=pipelining)
    assert results == [], "on_done must never run inside send_mail"
    while not results:
        assert time.monotonic() - started < limit, "send_mail did not report within %ss" % limit
        loop.run_once(0.05)
    elapsed = time.monotonic() - started
    for _ in range(5):
        loop.run_once(0.01)
    assert len(results) == 1
    if own_loop:
        finish(loop)
    return results[0], elapsed


def finish(loop, limit=10.0):
    """close_idle(loop) and turn it until every connection is closed (QUIT answered)."""
    close_idle(loop)
    deadline = time.monotonic() + limit
    while (loop._readers or loop._writers) and time.monotonic() < deadline:
        loop.run_once(0.02)
    assert not loop._readers and not loop._writers, "connections left open"


def stuffed(message):
    """What a correct client puts on the wire for a CRLF message."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    lines = message.split(b"\r\n")[:-1] if message else []
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


# -- the wire format (no network) ----------------------------------------------------------

def reference_wire(message):
    """Bare CR and LF become CRLF, lines starting with a dot are stuffed, CRLF . CRLF ends."""
    normal = message.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return stuffed(normal)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\x00", b"\xe9", b".\r\n"]), max_size=40),
       st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_wire_encoder_matches_reference_for_any_block_split(pieces, cuts):
    message = b"".join(pieces)
    points = sorted({min(cut, len(message)) for cut in cuts} | {0, len(message)})
    encoder = WireEncoder()
    wire = b"".join(encoder.encode(message[a:b]) for a, b in zip(points, points[1:])) + encoder.finish()
    assert wire == reference_wire(message)
    # No premature end of data, and nothing but CRLF line ends on the wire.
    assert wire.find(b"\r\n.\r\n") in (-1, len(wire) - 5)
    assert wire.count(b"\n") == wire.count(b"\r\n") == wire.count(b"\r")


# -- Postfix smtp-sink -----------------------------------------------------------------------

def test_smtp_sink_receives_the_message_exactly(tmp_path):
    with SmtpSink(tmp_path) as sink:
        result, _ = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"c@y.org"])
        assert result.ok and result.code == 250 and result.error is None
        assert result.accepted == 2 and result.host == sink.address
        assert result.recipient_replies == [b"250 2.1.5 Ok", b"250 2.1.5 Ok"]
        assert sink.wait_for(1)
        received = sink.messages()[0]
    assert received.data == MESSAGE
    assert received.sender == b"a@x.org" and received.recipients == [b"b@y.org", b"c@y.org"]
    assert received.helo == b"client.test"
    # smtp-sink advertises 8BITMIME but not SIZE: only BODY= is declared.
    assert received.mail_args == b"<a@x.org> BODY=8BITMIME"


@pytest.mark.parametrize("size", [70_000, 900_000, 1_500_000])
def test_smtp_sink_receives_a_big_message_in_memory_exactly(tmp_path, size):
    """Up to ONE_WRITE in one write, beyond it block by block: either way the bytes arrive as
    they were (a memory buffer, dot lines included)."""
    line = b".dot at the start, then text " + b"x" * 40 + b"\r\n"
    message = bytearray(b"Subject: big\r\n\r\n" + line * (size // len(line)))
    with SmtpSink(tmp_path) as sink:
        result, _ = deliver([sink.address], message)
        assert result.ok and sink.wait_for(1)
        assert sink.messages()[0].data == bytes(message)


def test_smtp_sink_ten_megabyte_spool_file_streams_in_bounded_memory(tmp_path):
    line = b"0123456789 .abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ \xe9\x00 tail\r\n"
    body = bytearray(b"Subject: big\r\n\r\n")
    number = 0
    while len(body) < 10 * 1024 * 1024:
        body += (b"." if number % 7 == 0 else b"") + b"%08d " % number + line
        number += 1
    path = tmp_path / "spool-big"
    path.write_bytes(bytes(body))
    expected = hashlib.sha256(bytes(body)).hexdigest()
    del body
    with SmtpSink(tmp_path) as sink:
        tracemalloc.start()
        try:
            result, elapsed = deliver([sink.address], str(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.ok, result.describe()
        assert sink.wait_for(1)
        received = sink.messages()[0].data
    assert hashlib.sha256(received).hexdigest() == expected
    assert peak < 3 * 1024 * 1024, "peak %d bytes: the file was not streamed" % peak


def test_smtp_sink_call_ahead_sends_no_data(tmp_path):
    with SmtpSink(tmp_path) as sink:
        result, _ = deliver([sink.address], None, recipients=[b"b@y.org", b"c@y.org"])
        time.sleep(0.2)
        assert sink.message_count() == 0
    assert result.ok and result.accepted == 2 and result.code == 250


@pytest.mark.parametrize("extra, code, transport", [
    (["-r", "RCPT"], 450, False),          # soft reject of every recipient: no DATA
    (["-f", "DATA"], 500, False),          # hard reject of DATA
    (["-f", "."], 500, False),             # hard reject of the message
    (["-Q", "DATA"], 421, False),          # 421 and disconnect
    (["-q", "."], ERROR_EOF, True),        # disconnect instead of answering the dot
])
def test_smtp_sink_failures(tmp_path, extra, code, transport):
    with SmtpSink(tmp_path, extra) as sink:
        result, _ = deliver([sink.address], MESSAGE, timeouts=FAST)
    assert not result.ok
    assert result.code == code and result.transport_failed is transport, result.describe()


def test_smtp_sink_twenty_concurrent_deliveries_on_one_loop(tmp_path):
    loop = Loop()
    results = []
    with SmtpSink(tmp_path) as sink:
        for number in range(20):
            send_mail(loop, [sink.address], b"a@x.org", [b"r%d@y.org" % number],
                      b"Subject: %d\r\n\r\nbody\r\n" % number, PATIENT, "client.test", results.append)
        deadline = time.monotonic() + 30
        while len(results) < 20 and time.monotonic() < deadline:
            loop.run_once(0.05)
        assert [r.code for r in results] == [250] * 20
        assert sink.wait_for(20)
        finish(loop)
        received = sorted(m.data for m in sink.messages())
    assert received == sorted(b"Subject: %d\r\n\r\nbody\r\n" % n for n in range(20))


# -- recording sink: the exact dialogue ---------------------------------------------------------

def test_wire_bytes_are_dot_stuffed_and_unstuff_to_the_message():
    with RecordingSink(size=0) as sink:
        result, _ = deliver([sink.address], MESSAGE)
    assert result.ok
    envelope = sink.messages[0]
    assert envelope.wire == stuffed(MESSAGE)
    assert envelope.data == MESSAGE
    assert envelope.mail_args == b"<a@x.org> SIZE=%d BODY=8BITMIME" % len(MESSAGE)
    assert envelope.pipelined and sink.violations == []


def test_message_without_final_crlf_gets_one_before_the_dot(tmp_path):
    path = tmp_path / "spool"
    path.write_bytes(b"Subject: x\r\n\r\nno line end")
    with RecordingSink() as sink:
        deliver([sink.address], str(path))
        deliver([sink.address], b"Subject: y\r\n\r\n.dot and no line end")
    assert sink.messages[0].wire == b"Subject: x\r\n\r\nno line end\r\n.\r\n"
    assert sink.messages[1].wire == b"Subject: y\r\n\r\n..dot and no line end\r\n.\r\n"


def test_bare_line_feeds_become_crlf_so_nothing_is_smuggled():
    message = b"Subject: s\n\nbody\n.\nMAIL FROM:<evil@x.org>\r\n"
    with RecordingSink() as sink:
        result, _ = deliver([sink.address], message)
    assert result.ok and len(sink.messages) == 1
    assert sink.messages[0].data == b"Subject: s\r\n\r\nbody\r\n.\r\nMAIL FROM:<evil@x.org>\r\n"


def test_ipv6_loopback():
    with RecordingSink(host="::1") as sink:
        result, _ = deliver(["[::1]:%d" % sink.port], MESSAGE)
    assert result.ok and result.host == "[::1]:%d" % sink.port
    assert sink.messages[0].data == MESSAGE


def test_without_pipelining_one_command_at_a_time_and_no_parameters():
    with RecordingSink(pipelining=False) as sink:
        result, _ = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"c@y.org", b"d@y.org"])
    assert result.ok and result.accepted == 3
    assert sink.violations == []
    assert sink.messages[0].mail_args == b"<a@x.org> BODY=8BITMIME"


def test_pipelining_can_be_turned_off():
    with RecordingSink() as sink:
        result, _ = deliver([sink.address], MESSAGE, pipelining=False)
    assert result.ok and not sink.messages[0].pipelined


def test_ehlo_refused_falls_back_to_helo_without_extensions():
    with RecordingSink("ehlo-unknown", size=0) as sink:
        result, _ = deliver([sink.address], MESSAGE)
    assert result.ok
    assert sink.messages[0].helo == b"client.test"
    assert sink.messages[0].mail_args == b"<a@x.org>"
    assert sink.commands[:2] == [b"EHLO client.test\r\n", b"HELO client.test\r\n"]


def test_null_sender_and_angle_brackets_given():
    with RecordingSink() as sink:
        deliver([sink.address], MESSAGE, sender=b"", recipients=[b"<b@y.org>"])
    assert sink.messages[0].sender == b"" and sink.messages[0].recipients == [b"b@y.org"]


def test_251_counts_as_accepted_and_per_recipient_replies_are_kept():
    replies = {b"far@y.org": b"251 2.1.5 will forward", b"bad@y.org": b"550 5.1.1 unknown"}
    with RecordingSink(rcpt_replies=replies) as sink:
        result, _ = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"far@y.org", b"bad@y.org"])
    assert result.ok and result.accepted == 2
    assert result.recipient_replies == [b"250 ok", b"251 2.1.5 will forward", b"550 5.1.1 unknown"]
    assert sink.messages[0].recipients == [b"b@y.org", b"far@y.org"]


def test_no_accepted_recipient_means_no_data():
    for pipelining in (True, False):
        with RecordingSink("reject-rcpt") as sink:
            result, _ = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"c@y.org"],
                                pipelining=pipelining)
        assert (result.code, result.accepted, result.ok) == (550, 0, False)
        assert result.recipient_replies == [b"550 5.1.1 no such user"] * 2
        assert sink.messages == []
        assert not any(line.startswith(b"DATA") for line in sink.commands) or pipelining


def test_call_ahead_stops_after_rcpt():
    """No DATA; the RSET that makes the connection reusable ends the pipelined group (the
    QUIT is close_idle's, in deliver)."""
    with RecordingSink() as sink:
        result, _ = deliver([sink.address], None, recipients=[b"b@y.org", b"c@y.org"])
    assert result.ok and result.accepted == 2
    assert [line.split(b":")[0] for line in sink.commands] == [b"EHLO client.test\r\n", b"MAIL FROM", b"RCPT TO",
                                                               b"RCPT TO", b"RSET\r\n", b"QUIT\r\n"]
    assert sink.transactions[0].pipelined


def test_call_ahead_without_pipelining_rsets_after_the_replies():
    with RecordingSink(pipelining=False) as sink:
        result, _ = deliver([sink.address], None, recipients=[b"b@y.org"])
    assert result.ok and result.accepted == 1 and sink.violations == []
    assert [line.split(b":")[0] for line in sink.commands] == [b"EHLO client.test\r\n", b"MAIL FROM", b"RCPT TO",
                                                               b"RSET\r\n", b"QUIT\r\n"]


@pytest.mark.parametrize("mode, code, stage", [
    ("reject-mail", 553, "MAIL"),
    ("reject-data-command", 554, "DATA"),
    ("reject-data", 554, "dot"),
    ("tempfail-rcpt", 451, "RCPT"),
])
def test_smtp_rejections_are_reported_with_the_reply(mode, code, stage):
    for pipelining in (True, False):
        with RecordingSink(mode) as sink:
            result, _ = deliver([sink.address], MESSAGE, timeouts=FAST, pipelining=pipelining)
        assert (result.code, result.stage, result.ok, result.error) == (code, stage, False, None)
        assert result.mail_accepted is (mode != "reject-mail")
        assert sink.messages == []


# -- failures: bounded in time, never a false success ------------------------------------------

def test_refused_connection_is_a_no_host_failure():
    with RecordingSink("refuse") as sink:
        result, elapsed = deliver([sink.address], MESSAGE, timeouts=FAST)
    assert (result.code, result.host, result.ok) == (NO_HOST, None, False)
    assert "refused" in result.error.lower() or "ECONNREFUSED" in result.error
    assert elapsed < 1.5


@pytest.mark.parametrize("mode", ["hang", "greeting-421", "garbage-greeting"])
def test_host_without_a_220_greeting_gives_way_to_the_next(mode):
    with RecordingSink(mode) as bad, RecordingSink() as good:
        result, elapsed = deliver([bad.address, good.address], MESSAGE, timeouts=FAST)
    assert result.ok and result.host == good.address
    assert elapsed < FAST.command + 1.5
    assert len(good.messages) == 1


def test_failover_across_refused_hanging_and_unresolvable_hosts():
    with RecordingSink("refuse") as refused, RecordingSink("hang") as silent, RecordingSink() as good:
        hosts = [refused.address, "nonexistent.invalid:25", "[bad", silent.address, good.address]
        result, _ = deliver(hosts, MESSAGE, timeouts=FAST)
    assert result.ok and result.host == good.address


def test_only_hanging_host_fails_within_the_command_timeout():
    with RecordingSink("hang") as sink:
        result, elapsed = deliver([sink.address], MESSAGE, timeouts=FAST)
    assert (result.code, result.host, result.ok) == (NO_HOST, None, False)
    assert "timed out" in result.error
    assert FAST.command - 0.1 < elapsed < FAST.command + 1.0


def test_connect_timeout_to_an_unroutable_address():
    timeouts = Timeouts(connect=0.3, command=0.6, dot=0.6)
    result, elapsed = deliver(["192.0.2.1:25"], MESSAGE, timeouts=timeouts)  # TEST-NET-1
    assert (result.code, result.ok) == (NO_HOST, False)
    assert elapsed < 2.0


@pytest.mark.parametrize("mode, code", [
    ("garbage", ERROR),
    ("drop-in-data", None),          # EOF or a reset, depending on who notices first
    ("drop-at-rcpt", ERROR_EOF),
    ("no-dot-reply", ERROR_TIMEOUT),
])
def test_broken_dialogue_is_a_transport_failure(mode, code):
    with RecordingSink(mode) as sink:
        result, elapsed = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"c@y.org"],
                                  timeouts=FAST)
    assert not result.ok and result.transport_failed and result.host == sink.address
    if code is not None:
        assert result.code == code, result.describe()
    else:
        assert result.code in (ERROR, ERROR_EOF), result.describe()
    assert elapsed < FAST.command + FAST.dot + 1.0
    assert sink.messages == []


def test_drop_at_rcpt_keeps_the_replies_read_so_far():
    with RecordingSink("drop-at-rcpt") as sink:
        result, _ = deliver([sink.address], MESSAGE, recipients=[b"b@y.org", b"c@y.org"], timeouts=FAST)
    assert result.recipient_replies == [b"250 ok", None] and result.accepted == 1


def test_host_that_stops_reading_the_message_fails_on_the_command_timeout():
    message = b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 1 + (b"y" * 998 + b"\r\n") * 8000
    with RecordingSink("stall-in-data") as sink:
        result, elapsed = deliver([sink.address], message, timeouts=FAST)
    assert (result.code, result.stage, result.ok) == (ERROR_TIMEOUT, "message", False), result.describe()
    assert elapsed < FAST.command + 1.5


def test_slow_but_answering_host_is_waited_for():
    with RecordingSink("slow", delay=0.1) as sink:
        result, _ = deliver([sink.address], MESSAGE, timeouts=Timeouts(2.0, 1.0, 1.0))
    assert result.ok and len(sink.messages) == 1


def test_bad_arguments_fail_without_connecting():
    with RecordingSink() as sink:
        for sender, recipients in [(b"a@x.org\r\nRCPT TO:<evil@x.org>", [b"b@y.org"]),
                                   (b"a@x.org", [b"b@y.org>\r\nDATA"]),
                                   (b"a@x.org\0", [b"b@y.org"]),
                                   ("<a@x.org\r>", [b"b@y.org"]),
                                   (b"a@x.org", [b"b@y.org", b"c@y\n.org"]),
                                   (b"a@x.org", [])]:
            result, _ = deliver([sink.address], MESSAGE, sender=sender, recipients=recipients)
            assert (result.code, result.host, result.ok) == (ERROR, None, False)
        result, _ = deliver([], MESSAGE)
        assert (result.code, result.ok) == (NO_HOST, False)
    assert sink.connections == 0


def test_unreadable_message_is_an_io_error(tmp_path):
    with RecordingSink() as sink:
        result, _ = deliver([sink.address], str(tmp_path / "vanished"))
        assert (result.code, result.ok) == (ERROR_IO, False)
        result, _ = deliver([sink.address], b"")   # an empty string: nothing to send (original)
        assert (result.code, result.ok) == (ERROR_IO, False)
    assert sink.connections == 0


def test_cancel_drops_the_delivery_silently():
    loop = Loop()
    results = []
    with RecordingSink("hang") as sink:
        handle = send_mail(loop, [sink.address], b"a@x.org", [b"b@y.org"], MESSAGE, FAST, "client.test",
                           results.append)
        deadline = time.monotonic() + 5
        while sink.connections == 0 and time.monotonic() < deadline:
            loop.run_once(0.02)
        handle.cancel()
        end = time.monotonic() + FAST.command + 0.5
        while time.monotonic() < end:
            loop.run_once(0.05)
    assert results == []


def test_cancel_before_a_failure_is_reported():
    """A failure found inside send_mail is reported on the next turn; a cancel() before that
    turn means no report at all, as for any other cancelled delivery."""
    loop = Loop()
    results = []
    handle = send_mail(loop, ["127.0.0.1:9"], b"a@x.org", [b"b@y.org"], b"", FAST, "client.test",
                       results.append)   # an empty message fails before any connect
    handle.cancel()
    for _ in range(5):
        loop.run_once(0.01)
    assert results == []
    send_mail(loop, ["127.0.0.1:9"], b"a@x.org", [b"b@y.org"], b"", FAST, "client.test", results.append)
    loop.run_once(0.01)
    assert [result.code for result in results] == [ERROR_IO]   # (not cancelled: reported)


def test_unix_socket_host(tmp_path):
    """Host lists may name a unix socket path (a one-shot server speaking just enough SMTP)."""
    import threading
    path = str(tmp_path / "smtp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    got = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            reader = conn.makefile("rb")
            conn.sendall(b"220 unix ESMTP\r\n")
            for line in iter(reader.readline, b""):
                got.append(line)
                if line == b"DATA\r\n":
                    conn.sendall(b"354 go\r\n")
                    while reader.readline() != b".\r\n":
                        pass
                    conn.sendall(b"250 stored\r\n")
                elif line.startswith(b"QUIT"):
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result, _ = deliver([path], MESSAGE)
    finally:
        thread.join(5)
        listener.close()
        os.unlink(path)
    assert result.ok and result.text == b"250 stored\r\n" and result.host == path


# -- replies cut from whatever the reads bring ------------------------------------------------

def scripted_host(script):
    """A one-connection SMTP host in a thread playing `script`: (what to read, answer) pairs;
    it reads that many command lines (or "message": through the final dot), then sends the
    answer's pieces with a pause between them, so that every reply reaches the client in
    the pieces given. -> (host entry, thread)."""
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        listener.close()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        with conn:
            for reads, pieces in script:
                if reads == "message":
                    while reader.readline() not in (b".\r\n", b""):
                        pass
                else:
                    for _ in range(reads):
                        reader.readline()
                for piece in pieces:
                    try:
                        conn.sendall(piece)
                    except OSError:          # the client gave up on us
                        return
                    time.sleep(0.02)
            reader.readline()                # QUIT, or the client hanging up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return "127.0.0.1:%d" % listener.getsockname()[1], thread


def test_replies_split_anywhere_across_reads_are_put_together():
    host, thread = scripted_host([
        (0, [b"22", b"0 split ESMTP\r", b"\n"]),
        (1, [b"250-split\r\n250-PIPE", b"LINING\r\n250 8BITMIME\r\n"]),           # EHLO
        (3, [b"250 sender ok\r\n25", b"0 rcpt ok\r\n354 go\r", b"\n"]),            # MAIL RCPT DATA
        ("message", [b"250 st", b"ored\r\n"]),
        (1, [b"221 bye\r\n"])])                                               # QUIT
    result, _ = deliver([host], MESSAGE)
    thread.join(5)
    assert result.ok and result.text == b"250 stored\r\n"
    assert result.recipient_replies == [b"250 rcpt ok"] and result.accepted == 1


def test_a_reply_trickling_in_line_by_line_has_one_deadline():
    """Each line comes well within the command timeout, the whole reply does not."""
    trickle = [b"250-line %d\r\n" % number for number in range(100)]   # one per 20 ms
    host, thread = scripted_host([(0, [b"220 slow ESMTP\r\n"]), (1, trickle)])
    result, elapsed = deliver([host], MESSAGE, timeouts=Timeouts(2.0, 0.5, 0.5))
    assert result.code == ERROR_TIMEOUT and result.stage == "EHLO" and elapsed < 1.0
    thread.join(5)


@pytest.mark.parametrize("reply, error", [
    (b"250-" + b"x" * 5000 + b"\r\n", "reply line longer than 4096 bytes"),
    (b"250-more\r\n" * 250, "reply longer than 200 lines"),
    (b"250-fine\r\nhello there\r\n", "not an SMTP reply"),
], ids=["long line", "many lines", "garbage"])
def test_a_reply_that_is_too_long_or_no_reply_fails_the_delivery(reply, error):
    host, thread = scripted_host([(0, [b"220 bad ESMTP\r\n"]), (1, [reply])])
    result, _ = deliver([host], MESSAGE, timeouts=FAST)
    assert result.code == ERROR and result.stage == "EHLO" and error in result.error
    thread.join(5)


# -- the netclient.Stream behaviour this client relies on (fixed with it) ---------------------

def test_stream_tells_every_waiting_writer_when_the_peer_vanishes():
    from smtpe.netclient import Stream
    loop = Loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    stream = Stream(loop, ours, "pair")
    calls = []
    stream.write(b"x" * (4 << 20), lambda: calls.append("first"))
    stream.write(b"y", lambda: calls.append("second"))   # must not cancel the first callback
    assert calls == [] and stream.pending_output > 0
    theirs.close()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        loop.run_once(0.05)
    assert calls == ["first", "second"] and stream.broken
    lines = []
    stream.read_line(lines.append, 5)
    assert lines == [None]           # at once: no answer can come on a broken stream
    stream.close()
