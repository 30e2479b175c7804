"""Lua smtp.code, smtp.sendfile and smtp.sendstring through a real Engine (Lua 5.1 state,
hooks as coroutines, waits on the loop) against the recording sink and Postfix smtp-sink."""
import io
import textwrap
import time

import pytest

from smtpe.engine import Engine
from smtpe.log import Log
from smtpe._speedups.loop import Loop
from smtpe.options import Options
from tests.support.smtpsink import RecordingSink, SmtpSink

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
    function hook.sendstring(hosts, rcpts, message)
        local ok, n, replies = smtp.sendstring(hosts, "a@x.org", rcpts, message)
        return ok, n, replies
    end
    function hook.sendfile(hosts, mail, rcpts, path)
        return smtp.sendfile(hosts, mail, rcpts, path)
    end
    function hook.types(hosts)
        local ok, n, replies = smtp.sendstring(hosts, "a@x.org", {"b@y.org"}, "Subject: t\\r\\n\\r\\nx\\r\\n")
        return type(ok), type(n), type(replies), #replies
    end
    function hook.twice(hosts)
        local first = smtp.sendstring(hosts, "a@x.org", {"b@y.org"}, "Subject: 1\\r\\n\\r\\n1\\r\\n")
        local second = smtp.sendstring(hosts, "a@x.org", {"c@y.org"}, "Subject: 2\\r\\n\\r\\n2\\r\\n")
        return first, second
    end
    function hook.codes()
        local c = smtp.code
        return c.STATUS, c.HELP, c.WELCOME, c.GOODBYE, c.AUTH_OK, c.OK, c.USER_NOT_LOCAL,
               c.WAITING, c.CLOSING, c.AUTH_MECHANISM, c.BUSY, c.TRY_AGAIN_LATER, c.NO_STORAGE,
               c.AUTH_TEMP, c.BAD_SYNTAX, c.BAD_ARGUMENTS, c.UNKNOWN_COMMAND, c.BAD_SEQUENCE,
               c.UNKNOWN_PARAM, c.AUTH_REQUIRED, c.AUTH_WEAK, c.AUTH_FAIL, c.AUTH_ENCRYPT,
               c.REJECT, c.UNKNOWN_USER, c.OVER_QUOTA, c.BAD_ADDRESS, c.TRANSACTION_FAILED,
               c.ERROR, c.ERROR_CONNECT, c.ERROR_TIMEOUT, c.ERROR_EOF, c.ERROR_IO
    end
"""


def make_engine(tmp_path, **options):
    path = tmp_path / "policy.lua"
    path.write_text(textwrap.dedent(SCRIPT))
    values = {"smtp-accept-timeout": "2", "smtp-command-timeout": "5", "smtp-dot-timeout": "5"}
    values.update({name.replace("_", "-"): str(value) for name, value in options.items()})
    return Engine(Options(values), Loop(), Log(verbose="", stream=io.StringIO()), script=str(path))


def run_hook(engine, name, *args, ctx=None, limit=30.0):
    ctx = ctx or engine.new_context()
    outcomes = []
    engine.run_hook(ctx, name, args, outcomes.append)
    deadline = time.monotonic() + limit
    while not outcomes:
        assert time.monotonic() < deadline, "hook %s did not finish" % name
        engine.loop.run_once(0.05)
    return outcomes[0]


def values(engine, name, *args, **kwargs):
    outcome = run_hook(engine, name, *args, **kwargs)
    assert outcome.error is None, outcome.error
    return outcome.values


def table(engine, *items):
    return engine.lua.table(*items)


def as_list(lua_table):
    return [lua_table[index] for index in range(1, len(lua_table) + 1)]


def test_codes_are_the_originals(tmp_path):
    engine = make_engine(tmp_path)
    assert values(engine, "codes") == (
        211, 214, 220, 221, 235, 250, 251, 354, 421, 432, 450, 451, 452, 454, 500, 501, 502, 503,
        504, 530, 534, 535, 538, 550, 551, 552, 553, 554, 100, 110, 120, 130, 140)


def test_sendstring_delivers_and_returns_boolean_count_and_replies(tmp_path):
    engine = make_engine(tmp_path)
    message = b"Subject: s\r\n\r\n.dot line\r\nbody\r\n"
    with RecordingSink() as sink:
        ok, count, replies = values(engine, "sendstring", table(engine, sink.address.encode()),
                                    table(engine, b"b@y.org", b"c@y.org"), message)
        assert values(engine, "types", sink.address.encode()) == (b"boolean", b"number", b"table", 1)
    assert (ok, count, as_list(replies)) == (True, 2, [b"250 ok", b"250 ok"])
    received = sink.messages[0]
    assert received.data == message and received.recipients == [b"b@y.org", b"c@y.org"]
    assert received.helo == engine.host_name.encode()


def test_hosts_as_one_string_with_failover_to_ipv6(tmp_path):
    engine = make_engine(tmp_path)
    with RecordingSink("refuse") as dead, RecordingSink(host="::1") as sink:
        hosts = ("%s; [::1]:%d" % (dead.address, sink.port)).encode()
        ok, count, replies = values(engine, "sendstring", hosts, table(engine, b"b@y.org"), b"x\r\n")
    assert (ok, count, as_list(replies)) == (True, 1, [b"250 ok"])
    assert sink.messages[0].data == b"x\r\n"


def test_sendfile_and_call_ahead_with_null_sender(tmp_path):
    engine = make_engine(tmp_path)
    spool = tmp_path / "spool"
    spool.write_bytes(b"Subject: f\r\n\r\nfile body")
    with RecordingSink() as sink:
        hosts = table(engine, sink.address.encode())
        ok, count, _ = values(engine, "sendfile", hosts, b"", table(engine, b"b@y.org"), str(spool).encode())
        assert (ok, count) == (True, 1)
        ok, count, replies = values(engine, "sendfile", hosts, b"", table(engine, b"b@y.org", b"c@y.org"), None)
        assert (ok, count, as_list(replies)) == (True, 2, [b"250 ok", b"250 ok"])
        ok, count, _ = values(engine, "sendstring", hosts, table(engine, b"d@y.org"), None)
        assert (ok, count) == (True, 1)
    assert len(sink.messages) == 1
    assert sink.messages[0].sender == b"" and sink.messages[0].data == b"Subject: f\r\n\r\nfile body\r\n"


def test_mixed_recipients_251_and_rejections(tmp_path):
    engine = make_engine(tmp_path)
    special = {b"far@y.org": b"251 2.1.5 will forward", b"bad@y.org": b"550 5.1.1 unknown user"}
    with RecordingSink(rcpt_replies=special) as sink:
        ok, count, replies = values(engine, "sendstring", sink.address.encode(),
                                    table(engine, b"b@y.org", b"far@y.org", b"bad@y.org"), b"x\r\n")
    assert (ok, count) == (True, 2)
    assert as_list(replies) == [b"250 ok", b"251 2.1.5 will forward", b"550 5.1.1 unknown user"]


def test_every_recipient_rejected(tmp_path):
    engine = make_engine(tmp_path)
    with RecordingSink("reject-rcpt") as sink:
        ok, count, replies = values(engine, "sendstring", sink.address.encode(), table(engine, b"b@y.org"), b"x\r\n")
    assert (ok, count, as_list(replies)) == (False, 0, [b"550 5.1.1 no such user"])
    assert sink.messages == []


@pytest.mark.parametrize("mode", ["refuse", "hang", "reject-mail", "greeting-421"])
def test_no_host_or_no_transaction_gives_false_zero_empty(tmp_path, mode):
    engine = make_engine(tmp_path, smtp_command_timeout=0.5)
    with RecordingSink(mode) as sink:
        started = time.monotonic()
        ok, count, replies = values(engine, "sendstring", table(engine, sink.address.encode()),
                                    table(engine, b"b@y.org"), b"x\r\n")
    assert (ok, count, as_list(replies)) == (False, 0, [])
    assert time.monotonic() - started < 2.5


def test_connection_lost_during_rcpt_keeps_addresses_not_reached(tmp_path):
    engine = make_engine(tmp_path)
    with RecordingSink("drop-at-rcpt") as sink:
        ok, count, replies = values(engine, "sendstring", sink.address.encode(),
                                    table(engine, b"b@y.org", b"c@y.org", b"d@y.org"), b"x\r\n")
    assert (ok, count, as_list(replies)) == (False, 1, [b"250 ok", b"c@y.org", b"d@y.org"])


def test_dot_timeout_comes_from_the_option(tmp_path):
    engine = make_engine(tmp_path, smtp_dot_timeout=0.5)
    with RecordingSink("no-dot-reply") as sink:
        started = time.monotonic()
        ok, count, _ = values(engine, "sendstring", sink.address.encode(), table(engine, b"b@y.org"), b"x\r\n")
    assert (ok, count) == (False, 1)
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("hook, args, message", [
    ("sendstring", (None, "rcpts", b"x"), "hosts"),
    ("sendstring", ("hosts", None, b"x"), "rcpts"),
    ("sendstring", ("emptyhosts", "rcpts", b"x"), "hosts"),
    ("sendstring", ("hosts", "emptyrcpts", b"x"), "rcpts"),
    ("sendfile", ("hosts", b"a@x.org", "rcpts", b"/nonexistent/spool"), "no such file"),
    ("sendfile", ("hosts", None, "rcpts", None), "mail"),
])
def test_bad_arguments_raise_lua_errors(tmp_path, hook, args, message):
    engine = make_engine(tmp_path)
    given = {"hosts": table(engine, b"127.0.0.1:9"), "rcpts": table(engine, b"b@y.org"),
             "emptyhosts": table(engine), "emptyrcpts": table(engine, 1, True)}
    args = tuple(given.get(arg, arg) if isinstance(arg, str) else arg for arg in args)
    outcome = run_hook(engine, hook, *args)
    assert outcome.error is not None and message in outcome.error


def test_waits_of_two_connections_interleave(tmp_path):
    engine = make_engine(tmp_path)
    with RecordingSink("slow", delay=0.05) as sink:
        hosts = sink.address.encode()
        outcomes = []
        for _ in range(2):
            engine.run_hook(engine.new_context(), "twice", (hosts,), outcomes.append)
        deadline = time.monotonic() + 20
        while len(outcomes) < 2 and time.monotonic() < deadline:
            engine.loop.run_once(0.05)
    assert [o.values for o in outcomes] == [(True, True), (True, True)]
    assert len(sink.messages) == 4


def test_closing_the_connection_cancels_the_send(tmp_path):
    engine = make_engine(tmp_path, smtp_command_timeout=0.3)  # uncancelled, it would end at 0.3 s
    with RecordingSink("hang") as sink:
        ctx = engine.new_context()
        outcomes = []
        engine.run_hook(ctx, "sendstring", (sink.address.encode(), table(engine, b"b@y.org"), b"x\r\n"),
                        outcomes.append)
        deadline = time.monotonic() + 5
        while sink.connections == 0 and time.monotonic() < deadline:
            engine.loop.run_once(0.02)
        ctx.close()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            engine.loop.run_once(0.05)
    assert outcomes == []


def test_postfix_smtp_sink_through_lua(tmp_path):
    engine = make_engine(tmp_path)
    with SmtpSink(tmp_path) as sink:
        ok, count, replies = values(engine, "sendstring", sink.address.encode(), table(engine, b"b@y.org"),
                                    b"Subject: p\r\n\r\n.x\r\n")
        assert sink.wait_for(1)
        assert sink.messages()[0].data == b"Subject: p\r\n\r\n.x\r\n"
    assert (ok, count, as_list(replies)) == (True, 1, [b"250 2.1.5 Ok"])
