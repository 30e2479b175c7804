"""The compiled socket transports over real loopback TCP: the client side
(smtpe._speedups.transport.SocketTransport) and the smart-host side
(smtpe._speedups.stream.Stream) read and send on the descriptor directly
(smtpe/_speedups/sockio.pxd). What arrives, in order and whole; EOF; a peer that resets;
a send the socket takes only in part; and no SIGPIPE even where the signal is not ignored."""
import errno
import os
import select
import socket
import struct
import subprocess
import sys

import pytest

from smtpe._speedups.loop import Loop
from smtpe._speedups.stream import Stream
from smtpe._speedups.transport import SocketTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tcp_pair():
    """(ours, theirs): a connected loopback TCP pair, ours non-blocking."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    theirs = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def reset(sock):
    """Close with an RST instead of a FIN (linger on, zero seconds)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Recorder:
    """A session as SocketTransport sees one: records what it is told."""

    def __init__(self):
        self.data = b""
        self.eof = False
        self.failures = []

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.eof = True

    def connection_failed(self, error_number, text, code):
        self.failures.append((error_number, text, code))


def turn_until(loop, condition, turns=400):
    for _ in range(turns):
        if condition():
            return True
        loop.run_once(0.01)
    return condition()


def receive(loop, loop_peer, size):
    """Turn the loop while reading from `loop_peer` (the other end) until `size` bytes came:
    -> them (what a sender on the loop wrote, as the peer got it)."""
    received = bytearray()
    loop_peer.setblocking(False)

    def all_in():
        try:
            received.extend(loop_peer.recv(1 << 20))
        except BlockingIOError:
            pass
        return len(received) >= size
    assert turn_until(loop, all_in, turns=4000)
    return bytes(received)


def started_transport(sock):
    loop = Loop()
    transport = SocketTransport(loop, sock)
    session = Recorder()
    transport.start(session)
    return loop, transport, session


def test_a_client_transport_receives_everything_in_order_then_the_eof(tcp_pair):
    ours, theirs = tcp_pair
    loop, transport, session = started_transport(ours)
    payload = bytes(range(256)) * 1024          # more than one read's worth
    theirs.sendall(payload)
    theirs.shutdown(socket.SHUT_WR)
    assert turn_until(loop, lambda: session.eof)
    assert session.data == payload
    assert session.failures == []


def test_a_reply_larger_than_the_socket_takes_arrives_whole_and_in_order(tcp_pair):
    ours, theirs = tcp_pair
    loop, transport, session = started_transport(ours)
    big = os.urandom(8 << 20)                   # far beyond the send buffer: a partial send
    transport.write(big)
    transport.write(b"250 after\r\n")
    transport.flush()
    assert receive(loop, theirs, len(big) + 11) == big + b"250 after\r\n"
    assert session.failures == []


def test_a_peer_that_resets_is_reported_as_a_read_failure(tcp_pair):
    ours, theirs = tcp_pair
    loop, transport, session = started_transport(ours)
    reset(theirs)
    assert turn_until(loop, lambda: session.failures)
    assert session.failures[0][0] == errno.ECONNRESET
    assert session.failures[0][2] == 4           # (close code: read error)
    assert not session.eof


def test_a_send_to_a_peer_that_reset_is_reported_as_a_write_failure(tcp_pair):
    ours, theirs = tcp_pair
    loop = Loop()
    transport = SocketTransport(loop, ours)      # not reading: the send finds the reset
    session = Recorder()
    transport.session = session
    reset(theirs)
    assert turn_until(loop, lambda: _readable(ours))
    transport.write(b"250 ok\r\n")
    transport.flush()
    assert turn_until(loop, lambda: session.failures)
    assert session.failures[0][0] in (errno.ECONNRESET, errno.EPIPE)
    assert session.failures[0][2] == 3           # (close code: write error)


def _readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


def test_a_send_to_a_closed_peer_does_not_raise_sigpipe_where_it_is_not_ignored():
    # Python ignores SIGPIPE itself; an embedding (or a wrapper) may not. The send must
    # report EPIPE instead of killing the process.
    program = (
        "import signal, socket\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
        "from smtpe._speedups.loop import Loop\n"
        "from smtpe._speedups.transport import SocketTransport\n"
        "ours, theirs = socket.socketpair()\n"
        "ours.setblocking(False)\n"
        "theirs.close()\n"
        "failures = []\n"
        "class S:\n"
        "    def connection_failed(self, *args): failures.append(args)\n"
        "loop = Loop()\n"
        "transport = SocketTransport(loop, ours)\n"
        "transport.session = S()\n"
        "transport.write(b'250 ok\\r\\n')\n"
        "transport.flush()\n"
        "loop.run_once(0.1)\n"
        "print(failures[0][0], failures[0][2])\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(errno.EPIPE), "3"]


def test_a_stream_reads_a_reply_and_breaks_on_a_reset(tcp_pair):
    ours, theirs = tcp_pair
    loop = Loop()
    stream = Stream(loop, ours, "peer")
    lines = []
    theirs.sendall(b"220 ready\r\n")
    stream.read_line(lines.append, 5)
    assert turn_until(loop, lambda: lines)
    assert lines == [b"220 ready\r\n"]
    stream.read_line(lines.append, 5)
    reset(theirs)
    assert turn_until(loop, lambda: len(lines) == 2)
    assert lines[1] is None and stream.broken
    assert "reset" in stream.error.lower()
    written = []
    stream.write(b"QUIT\r\n", lambda: written.append(stream.broken))
    assert written == [True]                     # a broken stream still calls back at once
    stream.close()


def test_a_stream_sends_more_than_the_socket_takes_in_order(tcp_pair):
    ours, theirs = tcp_pair
    loop = Loop()
    stream = Stream(loop, ours, "peer")
    big = os.urandom(8 << 20)
    drained = []
    stream.write(big[:4 << 20])
    stream.write(big[4 << 20:], lambda: drained.append(stream.broken))
    assert receive(loop, theirs, len(big)) == big
    assert turn_until(loop, lambda: drained)
    assert drained == [False]
    stream.close()
