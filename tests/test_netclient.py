"""smtpe.netclient.Stream between read requests, over a real loopback TCP connection: what
the peer sends while nobody reads is kept for the next request, and neither an EOF nor a
flood while idle can spin the loop or fill memory."""
import socket

import pytest

from smtpe import netclient
from smtpe.netclient import UNREAD_LIMIT


@pytest.fixture
def connected(loop):
    """(stream, peer socket): a Stream connected to a socket the test writes with."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    streams = []
    netclient.connect(loop, ["127.0.0.1:%d" % listener.getsockname()[1]], None, 5,
                   lambda stream, reason=None: streams.append(stream))
    peer, _ = listener.accept()
    listener.close()
    while not streams:
        loop.run_once(0.05)
    assert streams[0] is not None
    yield streams[0], peer
    streams[0].close()
    peer.close()


def read_line(loop, stream):
    lines = []
    stream.read_line(lines.append, 5)
    while not lines:
        loop.run_once(0.05)
    return lines[0]


def turns_in(loop, count):
    """Turn the loop `count` times with a 10 ms wait: -> how many turns found work."""
    busy = 0
    for _ in range(count):
        before = loop.time()
        loop.run_once(0.01)
        busy += loop.time() - before < 0.005
    return busy


def test_lines_sent_between_requests_wait_for_the_next_request(loop, connected):
    stream, peer = connected
    peer.sendall(b"220 one\r\n")
    assert read_line(loop, stream) == b"220 one\r\n"
    peer.sendall(b"250 two\r\n250 three\r\n")
    turns_in(loop, 5)                        # arrives while no read is pending
    assert read_line(loop, stream) == b"250 two\r\n"
    assert read_line(loop, stream) == b"250 three\r\n"


def test_an_eof_while_idle_does_not_spin_the_loop_and_ends_the_next_read(loop, connected):
    stream, peer = connected
    peer.sendall(b"220 hello\r\n")
    assert read_line(loop, stream) == b"220 hello\r\n"
    peer.close()
    # a readable-for-ever socket would make every turn return at once
    assert turns_in(loop, 20) <= 2
    assert read_line(loop, stream) is None and stream.error == "connection closed by peer"


def test_a_flood_while_idle_is_buffered_only_up_to_the_limit(loop, connected):
    stream, peer = connected
    peer.sendall(b"220 hello\r\n")
    assert read_line(loop, stream) == b"220 hello\r\n"     # the stream watches its socket now
    peer.setblocking(False)
    sent = 0
    chunk = b"x" * 65536
    for _ in range(200):                     # the peer writes until its socket is full
        try:
            sent += peer.send(chunk)
        except BlockingIOError:
            loop.run_once(0.01)
    turns_in(loop, 20)
    assert sent > 2 * UNREAD_LIMIT
    assert len(stream._inbuf) <= UNREAD_LIMIT + 65536


def read_line_timed(loop, stream, timeout):
    """A read_line the peer leaves unanswered: -> (line, seconds until it ended)."""
    lines = []
    started = loop.time()
    stream.read_line(lines.append, timeout)
    while not lines:
        assert loop.time() - started < timeout + 5, "the read never timed out"
        loop.run_once(0.05)
    return lines[0], loop.time() - started


def test_every_read_times_out_at_its_own_deadline(loop, connected):
    """One timer serves a stream's reads: a read with a shorter timeout than the one before
    still ends on time, and one with a longer timeout is not ended early."""
    stream, peer = connected
    peer.sendall(b"220 one\r\n")
    stream.read_line(lambda _line: None, 30)       # answered at once: its timer stays
    turns_in(loop, 2)
    line, took = read_line_timed(loop, stream, 0.3)
    assert line is None and stream.error == "timed out" and 0.25 < took < 1.0
    stream.error = None
    peer.sendall(b"250 two\r\n")
    stream.read_line(lambda _line: None, 0.2)      # answered at once, its timer stays armed
    turns_in(loop, 2)
    line, took = read_line_timed(loop, stream, 0.8)
    assert line is None and 0.75 < took < 1.5


def test_a_read_answered_in_time_leaves_no_timeout_behind(loop, connected):
    stream, peer = connected
    peer.sendall(b"220 one\r\n")
    assert read_line(loop, stream) == b"220 one\r\n"      # (a 5 s timeout, answered at once)
    stream.read_line(lambda _line: None, None)           # no deadline now
    turns_in(loop, 2)
    peer.sendall(b"250 late\r\n")
    lines = []
    stream.read_line(lines.append, 0.2)
    while not lines:
        loop.run_once(0.05)
    assert lines == [b"250 late\r\n"]
