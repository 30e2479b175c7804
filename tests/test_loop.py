"""The event loop's end-of-turn work: replies and log lines gathered over a turn leave at
its end, before the loop waits again (real socket pairs, no timing assumptions)."""
import io
import socket

import pytest

from smtpe.log import Log
from smtpe._speedups.loop import Loop
from smtpe._speedups.transport import SocketTransport


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def wake(loop, sock, callback):
    """callback() runs in the turn in which `sock` becomes readable."""
    def readable():
        loop.remove_reader(sock.fileno())
        sock.recv(100)
        callback()
    loop.add_reader(sock.fileno(), readable)


def test_turn_end_calls_run_in_order_and_may_queue_more(pair):
    loop = Loop()
    ours, theirs = pair
    calls = []

    def first():
        calls.append("first")
        loop.at_turn_end(lambda: calls.append("queued by first"))

    wake(loop, ours, lambda: (loop.at_turn_end(first), loop.at_turn_end(lambda: calls.append("second")),
                              calls.append("event")))
    theirs.send(b"x")
    loop.run_once(1.0)
    assert calls == ["event", "first", "second", "queued by first"]
    loop.run_once(0)
    assert len(calls) == 4  # once only


class Session:
    """What SocketTransport needs of a session."""
    def connection_failed(self, *args):
        raise AssertionError("unexpected failure %r" % (args,))


def test_replies_of_a_turn_leave_together_at_its_end(pair):
    loop = Loop()
    ours, theirs = pair
    trigger_ours, trigger_theirs = socket.socketpair()
    transport = SocketTransport(loop, ours)
    transport.session = Session()
    seen_during_turn = []

    def reply_twice():
        transport.write(b"250 first\r\n")
        transport.flush()
        transport.write(b"250 second\r\n")
        transport.flush()
        try:
            seen_during_turn.append(theirs.recv(100))
        except BlockingIOError:
            seen_during_turn.append(None)

    wake(loop, trigger_ours, reply_twice)
    trigger_theirs.send(b"x")
    loop.run_once(1.0)
    assert seen_during_turn == [None]              # nothing left during the turn
    assert theirs.recv(100) == b"250 first\r\n250 second\r\n"
    trigger_ours.close()
    trigger_theirs.close()


class CountingStream(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_log_lines_of_a_turn_are_written_in_one_write(pair):
    loop = Loop()
    ours, theirs = pair
    stream = CountingStream()
    log = Log(stream=stream)
    log.batch(loop)
    wake(loop, ours, lambda: [log.info("line %d" % number) for number in range(3)])
    theirs.send(b"x")
    loop.run_once(1.0)
    assert stream.writes == 1
    assert [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()] == ["line 0", "line 1", "line 2"]
    log.unbatch()
    log.info("at once")
    assert stream.writes == 2 and stream.getvalue().endswith("info: at once\n")


# -- Deadline: one lazily kept timer for a deadline that moves ------------------------------------
def run_for(loop, seconds):
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        loop.run_once(0.01)


def test_a_deadline_moved_later_keeps_its_timer_and_expires_once_at_the_new_time():
    from smtpe._speedups.loop import Deadline
    loop = Loop()
    expired = []
    deadline = Deadline(loop, lambda: expired.append(loop.time()))
    deadline.set(0.05)
    timer = deadline.timer
    started = loop.time()
    deadline.set(0.2)                       # later: no new timer
    assert deadline.timer is timer
    run_for(loop, 0.4)
    assert len(expired) == 1 and expired[0] - started >= 0.2
    assert deadline.timer is None


def test_a_nearer_deadline_rearms_and_a_cleared_or_cancelled_one_never_expires():
    from smtpe._speedups.loop import Deadline
    loop = Loop()
    expired = []
    deadline = Deadline(loop, lambda: expired.append(1))
    deadline.set(10)
    deadline.set(0.05)                      # nearer: re-armed
    assert deadline.timer.when <= loop.time() + 0.05
    run_for(loop, 0.15)
    assert expired == [1]
    deadline.set(0.05)
    deadline.clear()
    run_for(loop, 0.15)
    deadline.set(0.05)
    deadline.cancel()
    assert deadline.timer is None
    run_for(loop, 0.15)
    assert expired == [1]
