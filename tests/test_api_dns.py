"""Lua `dns.*` through the real engine (smtpe.engine.Engine, lupa's Lua 5.1) on a real Loop,
against a real nsd on 127.0.0.1 (and a relay that holds back some answers, for dns.wait(0))."""
import io
import time

import pytest

from smtpe.engine import Engine
from smtpe.log import Log
from smtpe._speedups.loop import Loop
from smtpe.options import Options
from tests.support.dnsserver import DnsServer, require_nsd, standard_zones
from tests.support.fakedns import FakeDns

SLOW_DELAY = 1.0

SCRIPT = rb"""
function hook.lookup(class, type, name, all)
    dns.open()
    dns.query(class, type, name)
    return dns.wait(all)
end

-- several queries in one context; `names` = { {class, type, name}, ... }
function hook.lookups(names, all)
    dns.open()
    for _, q in ipairs(names) do
        dns.query(q[1], q[2], q[3])
    end
    local pending = dns.ispending()
    return dns.wait(all), pending
end

function hook.constants()
    return dns.class, dns.type, dns.rcode
end

function hook.names(kind, value)
    return dns[kind .. "name"](value)
end

function hook.keys_and_identity()
    dns.open()
    dns.query(dns.class.IN, dns.type.A, "www.test.")
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local answers = dns.wait(1)
    return answers, #answers, rawequal(answers[2], answers["IN,A,www.test."]),
           rawequal(answers[1], answers["IN,A,www.test."])
end

function hook.ptr(ip)
    dns.open()
    dns.query(dns.class.IN, dns.type.PTR, ip)
    local answers = dns.wait(1)
    return answers["IN,PTR," .. net.reverse_ip(ip, 1)], answers
end

function hook.cumulative()
    dns.open()
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local first = dns.wait(1)
    dns.query(dns.class.IN, dns.type.MX, "test")
    local second = dns.wait(1)
    dns.reset()
    local pending_after_reset = dns.ispending()
    local third = dns.wait(1)
    dns.query(dns.class.IN, dns.type.TXT, "www.test")
    local fourth = dns.wait(1)
    return #first, #second, pending_after_reset, #third, #fourth, fourth[1].answer[1].value
end

function hook.wait_any()
    dns.open()
    dns.query(dns.class.IN, dns.type.A, "slow.test")
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local started = os.clock()
    local first = dns.wait(0)
    local first_count, pending = #first, dns.ispending()
    local again = dns.wait(0)         -- earlier answers count: returns at once
    local all = dns.wait(1)
    return first_count, pending, #again, #all, dns.ispending(), first[1].name
end

function hook.nothing_pending(all)
    dns.open()
    return dns.wait(all)
end

function hook.not_open()
    local pending = dns.ispending()
    dns.query(dns.class.IN, dns.type.A, "www.test")
    return pending, dns.wait(1)
end

function hook.open_and_query()
    dns.open()
    dns.query(dns.class.IN, dns.type.A, "www.test")
    return dns.ispending()
end

function hook.still_open()
    return dns.ispending(), dns.wait(1)
end

function hook.open_close_juggling()
    dns.open()
    dns.open()                        -- no-op
    dns.query(dns.class.IN, dns.type.A, "www.test")
    dns.close()
    dns.close()                       -- no-op
    local closed_pending = dns.ispending()
    dns.open()                        -- re-opens, empty
    local empty = dns.wait(1)
    dns.query(dns.class.IN, dns.type.AAAA, "www.test")
    local after = dns.poll(1)
    return closed_pending, #empty, #after, after[1].answer[1].value
end

function hook.isequal()
    dns.open()
    dns.query(dns.class.IN, dns.type.MX, "test")
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local a = dns.wait(1)
    dns.reset()
    dns.query(dns.class.IN, dns.type.MX, "TEST")
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local b = dns.wait(1)
    local mx_a, mx_b = a["IN,MX,test."].answer, b["IN,MX,TEST."].answer
    local www_a, www_b = a["IN,A,www.test."].answer[1], b["IN,A,www.test."].answer[1]
    return dns.isequal(mx_a[1], mx_a[1]), dns.isequal(mx_a[1], mx_b[1]),
           dns.isequal(mx_a[1], mx_b[2]), dns.isequal(www_a, www_b),
           dns.isequal(www_a, mx_a[1]), dns.isequal(www_a), dns.isequal(www_a, www_b, www_a),
           dns.isequal(1, 1), dns.isequal(www_a, { name = "WWW.TEST.", class = 1, type = 1, value = "192.0.2.10" }),
           dns.isequal(www_a, { name = "www.test.", class = 1, type = 1, value = "192.0.2.11" })
end

function hook.flags()
    dns.open()
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local with_true = dns.wait(true)
    dns.query(dns.class.IN, dns.type.A, "www.test")
    local with_false = dns.wait(false)
    return #with_true, #with_false
end

function hook.bad_arguments(which)
    dns.open()
    if which == "class" then dns.query("x", dns.type.A, "www.test") end
    if which == "rcodename" then return dns.rcodename() end
    if which == "long" then dns.query(dns.class.IN, dns.type.A, string.rep("a", 64) .. ".test") end
    if which == "empty" then dns.query(dns.class.IN, dns.type.A, "") ; dns.query(dns.class.IN, dns.type.A, nil) end
    return dns.ispending()
end

function hook.dnsbl(ip)
    dns.open()
    local reversed = net.reverse_ip(ip, 0)
    for _, list in ipairs({ "dnsbl.example.", "slow.dnsbl.example." }) do
        dns.query(dns.class.IN, dns.type.A, reversed .. "." .. list)
    end
    local answers = dns.wait(1)
    local hit = answers["IN,A," .. reversed .. ".dnsbl.example."]
    local slow = answers["IN,A," .. reversed .. ".slow.dnsbl.example."]
    return hit.rcode, hit.answer and hit.answer[1].value, slow.rcode, #answers
end
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_nsd()
    with DnsServer(tmp_path_factory.mktemp("dns"), standard_zones()) as running:
        yield running


@pytest.fixture(scope="module")
def relay(server):
    """Relays to nsd; answers for names containing `slow` come SLOW_DELAY seconds late."""
    with FakeDns("slow", upstream=server.port, delay=SLOW_DELAY) as running:
        yield running


def make_engine(tmp_path, servers, max_timeout="5", verbose="+warn +info"):
    script = tmp_path / "policy.lua"
    script.write_bytes(SCRIPT)
    stream = io.StringIO()
    options = Options({"dns-servers": servers, "dns-max-timeout": max_timeout, "verbose": verbose})
    engine = Engine(options, Loop(), Log(stream=stream, verbose=verbose), script=str(script))
    engine.log_stream = stream
    return engine


def close_engine(engine):
    resolver = getattr(engine.loop, "resolver", None)
    if resolver is not None:
        resolver.close()
    engine.loop.close()


@pytest.fixture
def engine(tmp_path, relay):
    engine = make_engine(tmp_path, relay.address)
    yield engine
    close_engine(engine)


@pytest.fixture
def ctx(engine):
    ctx = engine.new_context()
    yield ctx
    ctx.close()


def run_hook(engine, ctx, name, *args, limit=20.0, expect_error=False):
    outcomes = []
    engine.run_hook(ctx, name, args, outcomes.append)
    deadline = time.monotonic() + limit
    while not outcomes:
        assert time.monotonic() < deadline, "hook.%s did not finish in %ss" % (name, limit)
        engine.loop.run_once(0.05)
    outcome = outcomes[0]
    if expect_error:
        assert outcome.error is not None
        return outcome.error
    assert outcome.error is None, outcome.error
    return outcome.values


def lua_array(table):
    return [table[index] for index in range(1, len(table) + 1)]


def lua_dict(table):
    return {key: table[key] for key in table.keys()}


def lookup(engine, ctx, qtype, name, all=1):
    (answers,) = run_hook(engine, ctx, "lookup", 1, qtype, name, all)
    return answers


# -- constants and names -----------------------------------------------------------------------
def test_constants(engine, ctx):
    classes, types, rcodes = run_hook(engine, ctx, "constants")
    assert lua_dict(classes) == {b"IN": 1, b"CS": 2, b"CH": 3, b"HS": 4, b"ANY": 255}
    assert lua_dict(types) == {b"A": 1, b"NS": 2, b"CNAME": 5, b"SOA": 6, b"NULL": 10, b"PTR": 12,
                               b"HINFO": 13, b"MINFO": 14, b"MX": 15, b"TXT": 16, b"AAAA": 28,
                               b"DNAME": 39, b"ANY": 255}
    assert lua_dict(rcodes) == {b"OK": 0, b"NOERROR": 0, b"FORMAT": 1, b"SERVFAIL": 2, b"NXDOMAIN": 3,
                                b"NOT_IMPLEMENTED": 4, b"REFUSED": 5, b"ERRNO": 16, b"TIMEDOUT": 17,
                                b"TIMEOUT": 17}


@pytest.mark.parametrize("kind, value, name", [
    ("class", 1, b"IN"), ("class", 3, b"CH"), ("class", 255, b"ANY"), ("class", 9, b"(unknown)"),
    ("type", 15, b"MX"), ("type", 11, b"WKS"), ("type", 38, b"A6"), ("type", 39, b"DNAME"),
    ("type", 33, b"(unknown)"), ("rcode", 0, b"OK"), ("rcode", 2, b"SERVER"),
    ("rcode", 4, b"NOT IMPLEMENTED"), ("rcode", 17, b"TIMED OUT"), ("rcode", 16, b"ERRNO"),
    ("rcode", 6, b"(unknown)"), ("rcode", b"3", b"NXDOMAIN"), ("rcode", 3.0, b"NXDOMAIN"),
])
def test_names(engine, ctx, kind, value, name):
    assert run_hook(engine, ctx, "names", kind.encode(), value) == (name,)


def test_names_need_a_number(engine, ctx):
    assert "number expected" in run_hook(engine, ctx, "bad_arguments", b"rcodename", expect_error=True)
    assert "number expected" in run_hook(engine, ctx, "names", b"type", True, expect_error=True)


# -- the answers table ---------------------------------------------------------------------------
def test_a_answer_table_shape(engine, ctx):
    answers = lookup(engine, ctx, 1, b"www.test")
    assert len(answers) == 1
    query = answers[1]
    assert set(query.keys()) == {b"name", b"class", b"type", b"rcode", b"answer", b"authority", b"extra"}
    assert (query[b"name"], query[b"class"], query[b"type"], query[b"rcode"]) == (b"www.test.", 1, 1, 0)
    (rr,) = lua_array(query[b"answer"])
    assert lua_dict(rr) == {b"name": b"www.test.", b"class": 1, b"type": 1, b"ttl": 300, b"value": b"192.0.2.10"}
    assert [lua_dict(r)[b"value"] for r in lua_array(query[b"authority"])] == [b"ns.test."]
    assert answers[b"IN,A,www.test."][b"rcode"] == 0


def test_keys_have_a_trailing_dot_and_later_results_win(engine, ctx):
    answers, count, second_is_keyed, first_is_keyed = run_hook(engine, ctx, "keys_and_identity")
    assert count == 2
    assert second_is_keyed is True and first_is_keyed is False
    assert sorted(key for key in answers.keys() if isinstance(key, bytes)) == [b"IN,A,www.test."]


def test_mx_sorted_by_preference_with_glue_in_extra(engine, ctx):
    query = lookup(engine, ctx, 15, b"test")[b"IN,MX,test."]
    mx = [lua_dict(r) for r in lua_array(query[b"answer"])]
    assert [(r[b"preference"], r[b"value"]) for r in mx] == [(10, b"mx1.test."), (20, b"mx2.test."), (30, b"mx3.test.")]
    assert set(mx[0]) == {b"name", b"class", b"type", b"ttl", b"preference", b"value"}
    glue = {r[b"name"]: r[b"value"] for r in map(lua_dict, lua_array(query[b"extra"])) if r[b"type"] == 1}
    assert glue[b"mx1.test."] == b"192.0.2.21"
    assert all(lua_dict(r)[b"type"] != 41 for r in lua_array(query[b"extra"]))  # no EDNS OPT


def test_nodata_has_an_empty_answer_and_the_soa(engine, ctx):
    query = lookup(engine, ctx, 15, b"www.test")[b"IN,MX,www.test."]
    assert query[b"rcode"] == 0
    assert len(query[b"answer"]) == 0
    (soa,) = [lua_dict(r) for r in lua_array(query[b"authority"])]
    assert soa == {b"name": b"test.", b"class": 1, b"type": 6, b"ttl": 60, b"mname": b"ns.test.",
                   b"rname": b"hostmaster.test.", b"serial": 2024010101, b"refresh": 3600,
                   b"retry": 600, b"expire": 86400, b"minimum": 60}


def test_nxdomain_has_no_record_arrays(engine, ctx):
    query = lookup(engine, ctx, 1, b"missing.test")[b"IN,A,missing.test."]
    assert query[b"rcode"] == 3
    assert query[b"answer"] is None and query[b"authority"] is None and query[b"extra"] is None


@pytest.mark.parametrize("qtype, name, expected", [
    (16, b"www.test", {b"value": b"webserver"}),
    (28, b"www.test", {b"value": b"2001:db8::10"}),
    (2, b"test", {b"value": b"ns.test."}),
    (39, b"d.test", {b"value": b"other.example."}),
    (10, b"n.test", {b"value": b"\x01\x02\x03"}),
    (13, b"h.test", {}),
    (14, b"mi.test", {}),
])
def test_record_fields_per_type(engine, ctx, qtype, name, expected):
    query = lookup(engine, ctx, qtype, name)[1]
    (rr,) = [lua_dict(r) for r in lua_array(query[b"answer"])]
    common = {b"name": name + b".", b"class": 1, b"type": qtype, b"ttl": 300}
    assert rr == {**common, **expected}


def test_cname_chain_and_unsupported_types(engine, ctx):
    answer = lua_array(lookup(engine, ctx, 1, b"alias.test")[1][b"answer"])
    assert [(r[b"type"], r[b"value"]) for r in answer] == [(5, b"www.test."), (1, b"192.0.2.10")]
    srv = lookup(engine, ctx, 33, b"srv.test")[b"IN,(unknown),srv.test."]
    assert srv[b"rcode"] == 0 and len(srv[b"answer"]) == 0   # SRV is skipped, as the original did


def test_ptr_by_raw_ipv4_and_ipv6(engine, ctx):
    keyed, answers = run_hook(engine, ctx, "ptr", b"192.0.2.10")
    assert keyed is not None and keyed[b"name"] == b"10.2.0.192.in-addr.arpa."
    assert lua_array(keyed[b"answer"])[0][b"value"] == b"www.test."
    keyed, _ = run_hook(engine, ctx, "ptr", b"2001:db8::10")
    assert keyed[b"name"].endswith(b".8.b.d.0.1.0.0.2.ip6.arpa.")
    assert lua_array(keyed[b"answer"])[0][b"value"] == b"www.test."
    # an .arpa name is sent as it is
    query = lookup(engine, ctx, 12, b"11.2.0.192.in-addr.arpa")[1]
    assert [r[b"value"] for r in lua_array(query[b"answer"])] == [b"host.example.test.", b"second.test."]  # nsd lower-cases data


def test_the_echoed_case_makes_the_key(engine, ctx):
    answers = lookup(engine, ctx, 1, b"MiXeD.Test")
    assert answers[b"IN,A,MiXeD.Test."][b"rcode"] == 0


# -- waiting semantics ---------------------------------------------------------------------------
def test_results_accumulate_until_reset(engine, ctx):
    first, second, pending_after_reset, third, fourth, txt = run_hook(engine, ctx, "cumulative")
    assert (first, second, pending_after_reset, third, fourth) == (1, 2, False, 0, 1)
    assert txt == b"webserver"


def test_wait_0_returns_on_the_first_answer_and_wait_1_on_the_last(engine, ctx):
    started = time.monotonic()
    outcomes = []
    engine.run_hook(ctx, "wait_any", (), outcomes.append)
    while not outcomes:
        engine.loop.run_once(0.05)
    elapsed = time.monotonic() - started
    assert outcomes[0].error is None, outcomes[0].error
    first_count, pending, again, total, pending_at_end, first_name = outcomes[0].values
    assert (first_count, pending, again, total, pending_at_end) == (1, True, 1, 2, False)
    assert first_name == b"www.test."                       # the fast one came first
    assert SLOW_DELAY * 0.8 <= elapsed < SLOW_DELAY + 3


@pytest.mark.parametrize("all", [0, 1])
def test_wait_with_nothing_pending_returns_at_once(engine, ctx, all):
    started = time.monotonic()
    (answers,) = run_hook(engine, ctx, "nothing_pending", all)
    assert len(answers) == 0 and list(answers.keys()) == []
    assert time.monotonic() - started < 0.5


def test_not_open(engine, ctx):
    pending, answers = run_hook(engine, ctx, "not_open")
    assert pending is False and len(answers) == 0
    assert "without dns.open" in engine.log_stream.getvalue()


def test_closed_at_the_end_of_each_hook(engine, ctx):
    assert run_hook(engine, ctx, "open_and_query") == (True,)
    pending, answers = run_hook(engine, ctx, "still_open")
    assert pending is False and len(answers) == 0
    assert engine.loop.resolver.pending == 0


def test_test_mode_keeps_the_context_across_hooks(engine):
    class Worker:
        test_mode = True

    class Session:
        worker = Worker()
        ident = "test"

    ctx = engine.new_context(session=Session())
    try:
        assert run_hook(engine, ctx, "open_and_query") == (True,)
        pending, answers = run_hook(engine, ctx, "still_open")
        assert pending is True and len(answers) == 1
    finally:
        ctx.close()
    assert engine.loop.resolver.pending == 0


def test_open_and_close_juggling(engine, ctx):
    closed_pending, empty, after, value = run_hook(engine, ctx, "open_close_juggling")
    assert (closed_pending, empty, after, value) == (False, 0, 1, b"2001:db8::10")


def test_flags_accept_booleans(engine, ctx):
    # wait(false) is wait(0): the first answer, still there, makes it return at once
    assert run_hook(engine, ctx, "flags") == (1, 1)


def test_isequal(engine, ctx):
    results = run_hook(engine, ctx, "isequal")
    assert results == (True, True, False, True, False, False, False, False, True, False)


def test_argument_errors_and_ignored_names(engine, ctx):
    assert "number expected" in run_hook(engine, ctx, "bad_arguments", b"class", expect_error=True)
    assert run_hook(engine, ctx, "bad_arguments", b"long") == (False,)
    assert "label longer than 63" in engine.log_stream.getvalue()
    assert run_hook(engine, ctx, "bad_arguments", b"empty") == (False,)


def test_dnsbl_lookups_outstanding_at_once(engine, ctx):
    rcode, value, slow_rcode, count = run_hook(engine, ctx, "dnsbl", b"127.0.0.2")
    assert (rcode, value, slow_rcode, count) == (0, b"127.0.0.2", 3, 2)
    rcode, value, _, _ = run_hook(engine, ctx, "dnsbl", b"127.0.0.3")
    assert (rcode, value) == (3, None)


def test_timed_out_query_is_present_with_rcode_timeout(tmp_path):
    with FakeDns("silent") as silent:
        engine = make_engine(tmp_path, silent.address, max_timeout="0.6")
        ctx = engine.new_context()
        try:
            started = time.monotonic()
            answers = lookup(engine, ctx, 1, b"www.test")
            elapsed = time.monotonic() - started
            query = answers[b"IN,A,www.test."]
            assert len(answers) == 1 and query[b"rcode"] == 17 and query[b"answer"] is None
            assert query[b"name"] == b"www.test."
            assert 0.5 <= elapsed < 2.5
        finally:
            ctx.close()
            close_engine(engine)


def test_connection_closing_while_waiting_cancels_everything(engine):
    ctx = engine.new_context()
    outcomes = []
    engine.run_hook(ctx, "lookup", (1, 1, b"slow.test", 1), outcomes.append)
    engine.loop.run_once(0.05)
    assert engine.loop.resolver.pending == 1 and ctx.run is not None
    ctx.close()
    assert engine.loop.resolver.pending == 0
    deadline = time.monotonic() + SLOW_DELAY + 0.5
    while time.monotonic() < deadline:
        engine.loop.run_once(0.05)
    assert outcomes == []  # the hook was abandoned, never resumed


def test_verbose_dns_logs_queries_and_answers(tmp_path, server):
    engine = make_engine(tmp_path, server.address, verbose="+warn +info +dns")
    ctx = engine.new_context()
    try:
        lookup(engine, ctx, 1, b"missing.test")
        text = engine.log_stream.getvalue()
        assert "dns query IN A missing.test" in text and "dns answer missing.test. rcode=NXDOMAIN" in text
    finally:
        ctx.close()
        close_engine(engine)


def test_200_connections_waiting_at_once_on_one_loop(engine):
    contexts = [engine.new_context() for _ in range(200)]
    outcomes = {}
    try:
        for index, ctx in enumerate(contexts):
            ip = b"127.0.0.2" if index % 2 == 0 else b"127.0.0.%d" % (3 + index % 250)
            engine.run_hook(ctx, "dnsbl", (ip,), lambda outcome, index=index: outcomes.setdefault(index, outcome))
        # every hook is suspended in dns.wait: the slow list holds them all for SLOW_DELAY
        assert not outcomes and all(ctx.run is not None for ctx in contexts)
        assert engine.loop.resolver.pending == 400
        deadline = time.monotonic() + SLOW_DELAY + 20
        while len(outcomes) < len(contexts):
            assert time.monotonic() < deadline, "%d of 200 hooks finished" % len(outcomes)
            engine.loop.run_once(0.05)
    finally:
        for ctx in contexts:
            ctx.close()
    for index, outcome in outcomes.items():
        assert outcome.error is None, outcome.error
        rcode, value, slow_rcode, count = outcome.values
        assert count == 2 and slow_rcode == 3
        assert (rcode, value) == ((0, b"127.0.0.2") if index % 2 == 0 else (3, None))
    assert engine.loop.resolver.pending == 0


# -- through a whole session (in-process, tests/support/inproc.py) ---------------------------------
SESSION_SCRIPT = """
function hook.accept(ip, host)
    return "220 hello " .. host
end

function hook.mail(sender, domain)
    dns.open()
    dns.query(dns.class.IN, dns.type.MX, domain)
    dns.query(dns.class.IN, dns.type.PTR, client.address)
    local answers = dns.wait(1)
    local mx = answers["IN,MX," .. domain .. "."]
    local ptr = answers["IN,PTR," .. net.reverse_ip(client.address, 1)]
    return "250 mx " .. mx.answer[1].value .. " glue " .. #mx.extra .. " ptr " .. ptr.answer[1].value
end

function hook.rcpt(recipient, domain)
    return "250 open " .. tostring(dns.ispending()) .. " " .. #dns.wait(1)
end
"""


def test_a_session_gets_its_ptr_name_and_waits_on_dns_in_hooks(tmp_path, server):
    from smtpe.dns import Resolver
    from tests.support.inproc import Harness
    harness = Harness(tmp_path, SESSION_SCRIPT, dns_servers=server.address, smtp_greeting_pause=0)
    loop = harness.worker.loop
    loop.resolver = Resolver.from_options(loop, harness.options)
    try:
        client = harness.connect(address="192.0.2.10")

        def reply(sent=None):
            output = client.send(sent) if sent is not None else client.new_output()
            deadline = time.monotonic() + 10
            while not output and time.monotonic() < deadline:
                harness.run(0.05)
                output = client.new_output()
            return output

        assert reply().startswith("220 hello www.test")
        assert reply("EHLO client.example\r\n").startswith("250")
        assert reply("MAIL FROM:<a@example.org>\r\n") == "250 mx mx.example.org. glue 1 ptr www.test.\r\n"
        # the context opened in hook.mail was closed when hook.mail returned
        assert reply("RCPT TO:<b@example.org>\r\n") == "250 open false 0\r\n"
    finally:
        loop.resolver.close()
