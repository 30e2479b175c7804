"""Smart-host connection reuse (the smart-host client's pool) against real sockets: the
recording sink (counts connections, closes them on demand) and Postfix smtp-sink.
Every test counts the messages at the sink: nothing is lost, nothing delivered twice."""
import time

import pytest

import smtpe._speedups.smtpclient as smtpclient
from smtpe._speedups.loop import Loop
from smtpe._speedups.smtpclient import ERROR_IO, Timeouts, close_idle, idle_connections, send_mail
from tests.support.smtpsink import RecordingSink, SmtpSink

pytestmark = pytest.mark.timeout(120)

PATIENT = Timeouts(connect=5.0, command=30.0, dot=60.0)
FAST = Timeouts(connect=2.0, command=1.0, dot=1.0)


def message(number):
    return b"Subject: %d\r\n\r\nbody %d\r\n" % (number, number)


class Client:
    """One loop (one worker's pool) sending messages one after the other."""

    def __init__(self):
        self.loop = Loop()

    def start(self, hosts, source, recipients=(b"b@y.org",), timeouts=PATIENT, pipelining=True):
        results = []
        handle = send_mail(self.loop, hosts, b"a@x.org", list(recipients), source, timeouts, "client.test",
                           results.append, pipelining=pipelining)
        return results, handle

    def wait(self, results, count=1, limit=30.0):
        deadline = time.monotonic() + limit
        while len(results) < count:
            assert time.monotonic() < deadline, "no result within %ss" % limit
            self.loop.run_once(0.05)
        self.turn()          # exactly once: nothing more comes; a RSET's reply is read
        assert len(results) == count
        return results

    def send(self, hosts, source, **kwargs):
        results, _ = self.start(hosts, source, **kwargs)
        return self.wait(results)[0]

    def turn(self, times=5):
        for _ in range(times):
            self.loop.run_once(0.01)

    def run_until(self, condition, limit=10.0):
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, "condition not met within %ss" % limit
            self.loop.run_once(0.02)

    def finish(self):
        """As a worker's drain: close_idle, then every connection ends (QUIT answered)."""
        close_idle(self.loop)
        self.run_until(lambda: not self.loop._readers and not self.loop._writers)


@pytest.fixture
def client():
    client = Client()
    yield client
    close_idle(client.loop)
    client.turn()


def data_of(sink):
    return sorted(envelope.data for envelope in sink.messages)


# -- reuse -----------------------------------------------------------------------------------

@pytest.mark.parametrize("pipelining", [True, False])
def test_messages_after_the_first_reuse_one_connection(client, pipelining):
    with RecordingSink(size=0, pipelining=pipelining) as sink:
        for number in range(5):
            result = client.send([sink.address], message(number))
            assert result.ok and result.code == 250 and result.error is None, result.describe()
            assert result.host == sink.address and result.accepted == 1 and result.stage == "dot"
            assert result.recipient_replies == [b"250 ok"]
            assert idle_connections(client.loop) == {sink.address: 1}
        assert sink.connections == 1 and sink.per_connection() == [5]
        assert [line for line in sink.commands if line.startswith(b"EHLO")] == [b"EHLO client.test\r\n"]
        assert sink.quits() == 0
        client.finish()
        assert sink.quits() == 1 and idle_connections(client.loop) == {}
    assert data_of(sink) == sorted(message(n) for n in range(5))
    # what EHLO said is kept with the connection: SIZE for every message, pipelining as asked
    assert [e.mail_args for e in sink.messages] == [b"<a@x.org> SIZE=%d BODY=8BITMIME" % len(message(n))
                                                    for n in range(5)]
    assert all(e.pipelined is pipelining for e in sink.messages) and sink.violations == []


def test_spool_files_and_strings_share_the_connection(client, tmp_path):
    path = tmp_path / "spool"
    path.write_bytes(b"Subject: file\r\n\r\n.dot\r\nno line end")
    with RecordingSink() as sink:
        assert client.send([sink.address], str(path)).ok
        assert client.send([sink.address], message(1)).ok
        assert client.send([sink.address], str(path)).ok
    assert sink.connections == 1
    assert [e.wire for e in sink.messages] == [b"Subject: file\r\n\r\n..dot\r\nno line end\r\n.\r\n",
                                               b"Subject: 1\r\n\r\nbody 1\r\n.\r\n",
                                               b"Subject: file\r\n\r\n..dot\r\nno line end\r\n.\r\n"]


def test_postfix_smtp_sink_takes_many_messages_on_one_connection(client, tmp_path, monkeypatch):
    connects = []
    real_connect = smtpclient.netclient.connect

    def counting_connect(*args, **kwargs):
        connects.append(args[1])
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(smtpclient.netclient, "connect", counting_connect)
    with SmtpSink(tmp_path) as sink:
        for number in range(10):
            result = client.send([sink.address], message(number))
            assert result.ok, result.describe()
        assert sink.wait_for(10)
        call_ahead = client.send([sink.address], None, recipients=[b"c@y.org", b"d@y.org"])
        assert call_ahead.ok and call_ahead.accepted == 2
        assert client.send([sink.address], message(10)).ok
        assert sink.wait_for(11)
        client.finish()
        received = sorted(m.data for m in sink.messages())
    assert len(connects) == 1
    assert received == sorted(message(n) for n in range(11))


def test_concurrent_deliveries_keep_at_most_max_idle(client, monkeypatch):
    monkeypatch.setattr(smtpclient, "POOL_MAX_IDLE", 3)
    with RecordingSink() as sink:
        first = [client.start([sink.address], message(number))[0] for number in range(6)]
        client.run_until(lambda: all(first))
        client.turn()
        assert all(r[0].ok for r in first)
        assert idle_connections(client.loop) == {sink.address: 3}
        assert sink.connections == 6 and sink.quits() == 3
        second = [client.start([sink.address], message(number))[0] for number in range(6, 12)]
        client.run_until(lambda: all(second))
        client.turn()
        assert all(r[0].ok for r in second)
        assert sink.connections == 6 + 3          # three taken from the pool, three new
        assert idle_connections(client.loop) == {sink.address: 3} and sink.quits() == 6
    assert data_of(sink) == sorted(message(n) for n in range(12))


# -- stale connections -------------------------------------------------------------------------

@pytest.mark.parametrize("stale", ["eof", "reset", "421"])
@pytest.mark.parametrize("pipelining", [True, False])
def test_a_reused_connection_found_dead_at_mail_is_retried_on_a_fresh_one(client, tmp_path, stale, pipelining):
    """The host dropped the idle connection just as we sent MAIL (the race the idle watch
    cannot close): the message goes on a fresh connection, once, from the spool file."""
    path = tmp_path / "spool"
    path.write_bytes(message(2))
    with RecordingSink(stale_after=1, stale=stale, pipelining=pipelining) as sink:
        assert client.send([sink.address], message(1), pipelining=pipelining).ok
        assert idle_connections(client.loop) == {sink.address: 1}
        result = client.send([sink.address], str(path), recipients=[b"b@y.org", b"c@y.org"],
                             pipelining=pipelining)
        assert result.ok and result.code == 250 and result.error is None, result.describe()
        assert result.accepted == 2 and result.recipient_replies == [b"250 ok", b"250 ok"]
        assert result.mail_accepted and result.host == sink.address and result.stage == "dot"
        assert sink.stale_closes == 1 and sink.connections == 2
        assert idle_connections(client.loop) == {sink.address: 1}
    assert sink.per_connection() == [1, 1]
    assert data_of(sink) == [message(1), message(2)]


def test_a_reused_connection_that_never_answers_mail_is_retried_after_the_timeout(client):
    with RecordingSink(stale_after=1, stale="hang") as sink:
        assert client.send([sink.address], message(1), timeouts=FAST).ok
        started = time.monotonic()
        result = client.send([sink.address], message(2), timeouts=FAST)
        assert result.ok and result.error is None, result.describe()
        assert time.monotonic() - started < FAST.command + 2.0
        assert sink.connections == 2 and sink.stale_closes == 1
    assert data_of(sink) == [message(1), message(2)]


def test_the_fresh_retry_happens_once_and_its_reply_is_the_result(client):
    with RecordingSink() as sink:
        assert client.send([sink.address], message(1)).ok
        sink.stale_after = 1          # the pooled connection is dead at its next MAIL
        sink.mode = "reject-mail"     # and a new connection refuses the sender
        result = client.send([sink.address], message(2))
        assert (result.code, result.stage, result.ok, result.error) == (553, "MAIL", False, None)
        assert not result.mail_accepted and result.recipient_replies == [None]
        assert sink.connections == 2 and sink.stale_closes == 1
    assert data_of(sink) == [message(1)]


def test_a_fresh_connection_failing_at_mail_is_not_retried(client):
    with RecordingSink(stale_after=0, stale="421") as sink:
        result = client.send([sink.address], message(1), timeouts=FAST)
        assert (result.code, result.stage, result.ok) == (421, "MAIL", False), result.describe()
        assert sink.connections == 1 and sink.messages == []
        assert idle_connections(client.loop) == {}


def test_a_connection_the_host_closes_while_idle_leaves_the_pool_at_once(client):
    with RecordingSink(idle_close=0.3) as sink:
        assert client.send([sink.address], message(1)).ok
        assert idle_connections(client.loop) == {sink.address: 1}
        # its 421 and EOF arrive while nobody uses it: dropped, the socket closed
        client.run_until(lambda: idle_connections(client.loop) == {} and not client.loop._readers)
        assert sink.idle_closes == 1
        result = client.send([sink.address], message(2))
        assert result.ok and sink.connections == 2
        assert sink.stale_closes == 0 and sink.quits() == 0   # closed by the host, no QUIT sent
    assert sink.per_connection() == [1, 1]
    assert data_of(sink) == [message(1), message(2)]


def test_idle_timeout_quits_the_pooled_connection(client, monkeypatch):
    monkeypatch.setattr(smtpclient, "POOL_IDLE_TIMEOUT", 0.2)
    with RecordingSink() as sink:
        assert client.send([sink.address], message(1)).ok
        assert idle_connections(client.loop) == {sink.address: 1}
        client.run_until(lambda: idle_connections(client.loop) == {} and not client.loop._readers)
        assert sink.quits() == 1
        assert client.send([sink.address], message(2)).ok
        assert sink.connections == 2
    assert data_of(sink) == [message(1), message(2)]


def test_max_messages_per_connection(client, monkeypatch):
    monkeypatch.setattr(smtpclient, "POOL_MAX_MESSAGES", 3)
    with RecordingSink() as sink:
        for number in range(7):
            assert client.send([sink.address], message(number)).ok
        assert sink.connections == 3
        assert sink.quits() == 2          # pipelined with the third message of each
        client.finish()
        assert sink.quits() == 3
    assert sink.per_connection() == [3, 3, 1]
    assert data_of(sink) == sorted(message(n) for n in range(7))


def test_nothing_is_pooled_after_close_idle(client):
    with RecordingSink() as sink:
        first = [client.start([sink.address], message(n))[0] for n in range(2)]
        client.run_until(lambda: all(first))
        client.turn()
        assert idle_connections(client.loop) == {sink.address: 2}
        client.finish()
        assert sink.quits() == 2
        assert client.send([sink.address], message(2)).ok
        client.run_until(lambda: not client.loop._readers)
        assert idle_connections(client.loop) == {} and sink.quits() == 3 and sink.connections == 3
    assert data_of(sink) == sorted(message(n) for n in range(3))


def test_cancelling_a_delivery_on_a_reused_connection_closes_it(client):
    with RecordingSink(delay=0.1) as sink:
        assert client.send([sink.address], message(1)).ok
        results, handle = client.start([sink.address], message(2))
        client.run_until(lambda: len(sink.transactions) == 2)   # its MAIL went out on it
        handle.cancel()
        assert idle_connections(client.loop) == {}
        client.turn(20)
        assert results == [] and not client.loop._readers
        assert client.send([sink.address], message(3)).ok
        assert sink.connections == 2
    assert data_of(sink) == [message(1), message(3)]


# -- transactions that end before the message ---------------------------------------------------

@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_transaction_is_reset_and_the_connection_reused(client, pipelining):
    with RecordingSink(rcpt_replies={b"bad@y.org": b"550 5.1.1 unknown"}, pipelining=pipelining) as sink:
        refused = client.send([sink.address], message(1), recipients=[b"bad@y.org"], pipelining=pipelining)
        assert (refused.code, refused.stage, refused.accepted) == (550, "RCPT", 0)
        assert client.send([sink.address], message(2), pipelining=pipelining).ok
        call_ahead = client.send([sink.address], None, recipients=[b"bad@y.org", b"c@y.org"],
                                 pipelining=pipelining)
        assert call_ahead.ok and call_ahead.accepted == 1
        assert client.send([sink.address], message(3), pipelining=pipelining).ok
        assert sink.connections == 1 and sink.violations == []
    verbs = [line[:4] for line in sink.commands]
    assert verbs.count(b"RSET") == 2 and verbs.count(b"EHLO") == 1
    assert data_of(sink) == [message(2), message(3)]


def test_a_rejected_message_leaves_the_connection_reusable(client):
    with RecordingSink("reject-data") as sink:
        for number in range(3):
            result = client.send([sink.address], message(number))
            assert (result.code, result.stage) == (554, "dot")
        assert sink.connections == 1 and sink.messages == []
        assert b"RSET\r\n" not in sink.commands      # the dot's reply ends a transaction


def test_after_a_421_the_connection_is_not_pooled(client):
    with RecordingSink(rcpt_replies={b"busy@y.org": b"421 4.3.2 shutting down"}) as sink:
        result = client.send([sink.address], message(1), recipients=[b"busy@y.org"])
        assert result.code == 421 and not result.ok
        assert idle_connections(client.loop) == {}
        assert client.send([sink.address], message(2)).ok
        assert sink.connections == 2
    assert data_of(sink) == [message(2)]


# -- failover order ------------------------------------------------------------------------------

def test_only_the_first_hosts_connections_are_pooled(client):
    with RecordingSink("refuse") as down, RecordingSink() as backup:
        for number in range(3):
            result = client.send([down.address, backup.address], message(number))
            assert result.ok and result.host == backup.address
        assert idle_connections(client.loop) == {}
        assert backup.connections == 3 and backup.quits() == 3
    assert data_of(backup) == sorted(message(n) for n in range(3))


def test_an_idle_connection_to_a_later_host_is_not_taken(client):
    with RecordingSink() as first, RecordingSink() as second:
        assert client.send([second.address], message(1)).ok          # pools one to `second`
        result = client.send([first.address, second.address], message(2))
        assert result.ok and result.host == first.address            # `first` is tried first
        assert idle_connections(client.loop) == {first.address: 1, second.address: 1}
        assert client.send([second.address, first.address], message(3)).host == second.address
        assert client.send([first.address], message(4)).host == first.address
        assert first.connections == 1 and second.connections == 1
    assert first.per_connection() == [2] and second.per_connection() == [2]


def test_connections_are_kept_apart_by_helo_name(client):
    with RecordingSink() as sink:
        for helo in ("one.test", "two.test", "one.test"):
            results = []
            send_mail(client.loop, [sink.address], b"a@x.org", [b"b@y.org"], message(1), PATIENT, helo,
                      results.append)
            client.wait(results)
            assert results[0].ok
        assert sink.connections == 2
    assert [e.helo for e in sink.messages] == [b"one.test", b"two.test", b"one.test"]


def test_a_bad_message_source_touches_no_pooled_connection(client, tmp_path):
    with RecordingSink() as sink:
        assert client.send([sink.address], message(1)).ok
        result = client.send([sink.address], str(tmp_path / "vanished"))
        assert result.code == ERROR_IO
        assert idle_connections(client.loop) == {sink.address: 1}
        assert client.send([sink.address], message(2)).ok
        assert sink.connections == 1


# -- through Lua: smtp.sendstring ----------------------------------------------------------------

def test_lua_sendstring_reuses_the_connection(tmp_path):
    from tests.test_api_smtp import make_engine, values
    engine = make_engine(tmp_path)
    with RecordingSink() as sink:
        assert values(engine, "twice", sink.address.encode()) == (True, True)
        assert values(engine, "twice", sink.address.encode()) == (True, True)
        close_idle(engine.loop)
        deadline = time.monotonic() + 5
        while sink.quits() < 1 and time.monotonic() < deadline:
            engine.loop.run_once(0.02)
    assert sink.connections == 1 and sink.per_connection() == [4]
