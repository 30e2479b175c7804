"""smtpe.dns.Resolver (pycares driven by our Loop) against a real nsd on 127.0.0.1, plus a
silent/garbage UDP responder for the faults nsd will not produce; and smtpe.dnswire's codec."""
import socket
import struct
import time

import pytest
from hypothesis import given, settings, strategies as st

from smtpe import dnswire
from smtpe.dns import RCODE_ERRNO, RCODE_TIMEOUT, Resolver, get_resolver
from smtpe.options import Options
from tests.support.dnsserver import LONG_TXT_CHUNKS, DnsServer, require_nsd, standard_zones
from tests.support.fakedns import FakeDns

A, NS, CNAME, SOA, NULL, PTR, HINFO, MINFO, MX, TXT, AAAA, SRV, DNAME = 1, 2, 5, 6, 10, 12, 13, 14, 15, 16, 28, 33, 39


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_nsd()
    with DnsServer(tmp_path_factory.mktemp("dns"), standard_zones()) as running:
        yield running


@pytest.fixture
def resolver(loop, server):
    resolver = Resolver(loop, [server.address], max_timeout=5)
    yield resolver
    resolver.close()


def run_until(loop, condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        loop.run_once(0.05)


def ask(loop, resolver, name, qtype, timeout=10.0, **kwargs):
    got = []
    resolver.query(name, qtype, got.append, **kwargs)
    run_until(loop, lambda: got, timeout)
    return got[0]


def values(records, rtype=None):
    return [r.fields.get("value") for r in records if rtype is None or r.type == rtype]


# -- every record type ---------------------------------------------------------------------------
def test_a_record_and_the_echoed_question(loop, resolver):
    response = ask(loop, resolver, "www.test", A)
    assert (response.rcode, response.name, response.qtype, response.qclass) == (0, b"www.test.", A, 1)
    assert values(response.message.answer) == [b"192.0.2.10"]
    record = response.message.answer[0]
    assert (record.name, record.type, record.rclass, record.ttl) == (b"www.test.", A, 1, 300)


def test_aaaa_is_compressed_lower_case(loop, resolver):
    response = ask(loop, resolver, "www.test.", AAAA)
    assert values(response.message.answer) == [b"2001:db8::10"]


def test_mx_with_glue_in_the_additional_section(loop, resolver):
    message = ask(loop, resolver, "test", MX).message
    assert sorted((r.fields["preference"], r.fields["value"]) for r in message.answer) == [
        (10, b"mx1.test."), (20, b"mx2.test."), (30, b"mx3.test.")]
    glue = {r.name: r.fields["value"] for r in message.additional if r.type == A}
    assert glue[b"mx1.test."] == b"192.0.2.21" and glue[b"mx3.test."] == b"192.0.2.23"
    assert values(message.authority, NS) == [b"ns.test."]


def test_txt_strings_are_concatenated(loop, resolver):
    assert values(ask(loop, resolver, "www.test", TXT).message.answer) == [b"webserver"]


def test_cname_inside_the_zone_comes_with_its_target(loop, resolver):
    answer = ask(loop, resolver, "alias.test", A).message.answer
    assert [(r.type, r.fields["value"]) for r in answer] == [(CNAME, b"www.test."), (A, b"192.0.2.10")]


def test_soa_ns_dname_null_hinfo_minfo(loop, resolver):
    soa = ask(loop, resolver, "test", SOA).message.answer[0].fields
    assert soa == {"mname": b"ns.test.", "rname": b"hostmaster.test.", "serial": 2024010101,
                   "refresh": 3600, "retry": 600, "expire": 86400, "minimum": 60}
    assert values(ask(loop, resolver, "test", NS).message.answer) == [b"ns.test."]
    assert values(ask(loop, resolver, "d.test", DNAME).message.answer) == [b"other.example."]
    assert values(ask(loop, resolver, "n.test", NULL).message.answer) == [b"\x01\x02\x03"]
    assert [r.fields for r in ask(loop, resolver, "h.test", HINFO).message.answer] == [{}]
    assert [r.fields for r in ask(loop, resolver, "mi.test", MINFO).message.answer] == [{}]


def test_dname_synthesises_a_cname(loop, resolver):
    answer = ask(loop, resolver, "x.d.test", A).message.answer
    assert (DNAME, b"other.example.") in [(r.type, r.fields["value"]) for r in answer]
    assert (CNAME, b"x.other.example.") in [(r.type, r.fields["value"]) for r in answer]


def test_types_the_api_does_not_decode_have_no_fields(loop, resolver):
    answer = ask(loop, resolver, "srv.test", SRV).message.answer
    assert [(r.type, r.fields) for r in answer] == [(SRV, None)]
    assert answer[0].rdata.endswith(b"\x03mx1\x04test\x00")


def test_ptr_by_arpa_name(loop, resolver):
    response = ask(loop, resolver, "10.2.0.192.in-addr.arpa", PTR)
    assert response.name == b"10.2.0.192.in-addr.arpa."
    assert values(response.message.answer) == [b"www.test."]


def test_the_case_sent_is_the_case_echoed(loop, resolver):
    response = ask(loop, resolver, "MiXeD.TeSt", A)
    assert response.name == b"MiXeD.TeSt."
    assert values(response.message.answer) == [b"192.0.2.30"]


# -- NXDOMAIN, NODATA, REFUSED, TCP ------------------------------------------------------------------
def test_nxdomain(loop, resolver):
    response = ask(loop, resolver, "missing.test", A)
    assert response.rcode == 3 and response.name == b"missing.test."
    assert response.message.answer == []


def test_nodata_is_rcode_zero_with_the_soa_in_authority(loop, resolver):
    response = ask(loop, resolver, "www.test", MX)
    assert response.rcode == 0
    assert response.message.answer == []
    assert [r.type for r in response.message.authority] == [SOA]


def test_refused_outside_the_servers_zones(loop, resolver):
    started = time.monotonic()
    response = ask(loop, resolver, "example.net", A)
    assert response.rcode == 5
    assert time.monotonic() - started < 3  # reported, not left to time out


def test_truncated_answer_is_retried_over_tcp(loop, resolver):
    response = ask(loop, resolver, "long.test", TXT)
    assert values(response.message.answer) == [b"".join(c.strip('"').encode() for c in LONG_TXT_CHUNKS)]


def test_dns_ignore_tcp_keeps_the_truncated_answer(loop, server):
    resolver = Resolver(loop, [server.address], max_timeout=5, ignore_tcp=True)
    try:
        response = ask(loop, resolver, "long.test", TXT)
        assert response.rcode == 0 and response.message.truncated
        assert sum(len(v) for v in values(response.message.answer)) < 1600
    finally:
        resolver.close()


# -- reverse and resolve_host (what the server uses) -----------------------------------------------
def reverse(loop, resolver, address):
    got = []
    resolver.reverse(address, got.append)
    run_until(loop, lambda: got)
    return got[0]


def test_reverse_gives_the_first_ptr_lower_cased_without_dot(loop, resolver):
    assert reverse(loop, resolver, "192.0.2.10") == "www.test"
    assert reverse(loop, resolver, "192.0.2.11") == "host.example.test"
    assert reverse(loop, resolver, "2001:db8::10") == "www.test"
    assert reverse(loop, resolver, b"192.0.2.10") == "www.test"


def test_reverse_without_answer_or_address(loop, resolver):
    assert reverse(loop, resolver, "192.0.2.99") is None       # NXDOMAIN
    assert reverse(loop, resolver, "198.51.100.1") is None     # REFUSED: not served here
    assert reverse(loop, resolver, "not an address") is None


def test_a_client_seen_again_within_the_ttl_costs_no_query(loop, resolver):
    assert reverse(loop, resolver, "192.0.2.10") == "www.test"
    got = []
    assert resolver.reverse("192.0.2.10", got.append) is None    # no Query: from the memo
    assert got == []                                             # never inside the call
    run_until(loop, lambda: got)
    assert got == ["www.test"]
    assert reverse(loop, resolver, "192.0.2.99") is None          # NXDOMAIN: SOA minimum 60 s
    assert resolver.reverse("192.0.2.99", got.append) is None


def test_failures_are_asked_again_and_the_memo_ends_with_the_ttl(loop, resolver):
    assert reverse(loop, resolver, "198.51.100.1") is None        # REFUSED: not kept
    assert resolver.reverse("198.51.100.1", lambda name: None) is not None
    assert reverse(loop, resolver, "192.0.2.12") == "brief.test"  # TTL 1
    time.sleep(1.1)
    got = []
    assert resolver.reverse("192.0.2.12", got.append) is not None
    run_until(loop, lambda: got)
    assert got == ["brief.test"]


def test_the_memo_is_bounded_and_lets_the_oldest_go(loop, resolver, monkeypatch):
    import smtpe.dns
    monkeypatch.setattr(smtpe.dns, "PTR_MEMO_SIZE", 2)
    for address in ("192.0.2.10", "192.0.2.11", "2001:db8::10"):
        reverse(loop, resolver, address)
    assert resolver.reverse("192.0.2.10", lambda name: None) is not None  # asked again
    assert resolver.reverse("2001:db8::10", lambda name: None) is None


def resolve(loop, resolver, name):
    got = []
    resolver.resolve_host(name, 25, got.append)
    run_until(loop, lambda: got)
    return got[0]


def test_resolve_host_a_and_aaaa_ipv4_first(loop, resolver):
    assert resolve(loop, resolver, "www.test") == ["192.0.2.10", "2001:db8::10"]
    assert resolve(loop, resolver, "many.test") == ["192.0.2.51", "192.0.2.52"]


def test_resolve_host_follows_cnames(loop, resolver):
    assert resolve(loop, resolver, "alias.test") == ["192.0.2.10", "2001:db8::10"]
    assert resolve(loop, resolver, "far.test") == ["192.0.2.40"]  # target in another zone


def test_resolve_host_not_found(loop, resolver):
    assert resolve(loop, resolver, "missing.test") == []


# -- faults and time limits ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["silent", "wrong-id"])
def test_no_usable_answer_is_reported_as_timeout_within_the_budget(loop, mode):
    with FakeDns(mode) as fake:
        resolver = Resolver(loop, [fake.address], max_timeout=0.8)
        try:
            started = time.monotonic()
            response = ask(loop, resolver, "www.test", A)
            elapsed = time.monotonic() - started
        finally:
            resolver.close()
    assert response.rcode == RCODE_TIMEOUT and response.name == b"www.test." and response.message is None
    assert 0.7 <= elapsed < 2.0
    assert fake.received >= 1


def test_garbage_answers_end_as_an_error_within_the_budget(loop):
    with FakeDns("garbage") as fake:
        resolver = Resolver(loop, [fake.address], max_timeout=0.8)
        try:
            started = time.monotonic()
            response = ask(loop, resolver, "www.test", A)
        finally:
            resolver.close()
    # c-ares gives up on unparsable answers (ERRNO), or the deadline passes first
    assert response.rcode in (RCODE_ERRNO, RCODE_TIMEOUT) and response.message is None
    assert time.monotonic() - started < 2.0


def test_servfail_is_reported(loop):
    with FakeDns("servfail") as fake:
        resolver = Resolver(loop, [fake.address], max_timeout=5)
        try:
            started = time.monotonic()
            response = ask(loop, resolver, "www.test", A)
        finally:
            resolver.close()
    assert response.rcode == 2
    assert time.monotonic() - started < 3


def test_a_closed_port_fails_fast(loop):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resolver = Resolver(loop, ["127.0.0.1:%d" % port], max_timeout=3)
    try:
        started = time.monotonic()
        response = ask(loop, resolver, "www.test", A)
        assert response.rcode in (RCODE_ERRNO, RCODE_TIMEOUT)
        assert reverse(loop, resolver, "192.0.2.10") is None
        assert time.monotonic() - started < 7
    finally:
        resolver.close()


def test_silent_server_bounds_many_queries_and_resolve_host(loop):
    with FakeDns("silent") as fake:
        resolver = Resolver(loop, [fake.address], max_timeout=0.5)
        try:
            got, hosts = [], []
            for index in range(50):
                resolver.query("n%d.test" % index, A, got.append)
            resolver.resolve_host("www.test", 25, hosts.append)
            run_until(loop, lambda: len(got) == 50 and hosts, timeout=5)
            assert {r.rcode for r in got} == {RCODE_TIMEOUT}
            assert hosts == [[]]
            assert resolver.pending == 0
        finally:
            resolver.close()


# -- many queries, cancel, close -------------------------------------------------------------------
def test_many_queries_in_flight(loop, resolver):
    wanted = []
    for index in range(200):
        wanted += [("www.test", A, [b"192.0.2.10"]), ("test", MX, None),
                   ("2.0.0.127.dnsbl.example", A, [b"127.0.0.2"]), ("q%d.test" % index, A, [])]
    got = {}
    for index, (name, qtype, _) in enumerate(wanted):
        resolver.query(name, qtype, lambda response, index=index: got.setdefault(index, response))
    assert resolver.pending == len(wanted)
    run_until(loop, lambda: len(got) == len(wanted), timeout=30)
    for index, (name, qtype, expected) in enumerate(wanted):
        response = got[index]
        assert response.name == name.encode() + b"."
        if expected is not None:
            assert values(response.message.answer) == expected
        else:
            assert len(response.message.answer) == 3
    assert resolver.pending == 0


def test_cancelled_query_never_calls_back(loop, resolver):
    got = []
    query = resolver.query("www.test", A, got.append)
    query.cancel()
    other = []
    resolver.query("www.test", AAAA, other.append)
    run_until(loop, lambda: other)
    loop.run_once(0.1)
    assert got == [] and resolver.pending == 0


def test_on_done_is_never_called_inside_query(loop, resolver):
    ask(loop, resolver, "www.test", A)  # now in c-ares' cache: the answer is immediate
    got = []
    resolver.query("www.test", A, got.append)
    assert got == []
    run_until(loop, lambda: got)


def test_close_reports_open_queries_and_releases_the_sockets(loop, server):
    with FakeDns("silent") as fake:
        resolver = Resolver(loop, [fake.address], max_timeout=30)
        got = []
        resolver.query("www.test", A, got.append)
        loop.run_once(0.05)
        assert resolver._readers
        resolver.close()
        run_until(loop, lambda: got)
    assert got[0].rcode == RCODE_ERRNO
    assert not loop._readers and not loop._writers
    late = []
    resolver.query("www.test", A, late.append)
    run_until(loop, lambda: late)
    assert late[0].rcode == RCODE_ERRNO


def test_idle_resolver_leaves_no_timer_running(loop, resolver):
    ask(loop, resolver, "www.test", A)
    loop.run_once(0.05)
    assert resolver._timer is None


def test_bad_names_are_refused_before_sending(resolver):
    with pytest.raises(dnswire.BadName):
        resolver.query("a" * 64 + ".test", A, print)
    with pytest.raises(dnswire.BadName):
        resolver.query(".".join(["abcdefghi"] * 26), A, print)
    with pytest.raises(dnswire.BadName):
        resolver.query("a..test", A, print)
    assert resolver.pending == 0


# -- options ------------------------------------------------------------------------------------
def options(**values):
    base = {"dns-servers": "", "dns-max-timeout": "45", "dns-round-robin": "-", "dns-ignore-tcp": "-"}
    base.update({name.replace("_", "-"): value for name, value in values.items()})
    return Options(base)


def test_from_options_parses_the_server_list(loop):
    resolver = Resolver.from_options(loop, options(dns_servers="127.0.0.1:5300; [::1]:5301, 192.0.2.1 ::2",
                                                   dns_max_timeout="7"))
    try:
        assert resolver.channel.servers == ["127.0.0.1:5300", "[::1]:5301", "192.0.2.1:53", "[::2]:53"]
        assert resolver.max_timeout == 7.0
    finally:
        resolver.close()
    with pytest.raises(ValueError):
        Resolver.from_options(loop, options(dns_servers="dns.example.com"))
    with pytest.raises(ValueError):
        Resolver.from_options(loop, options(dns_servers="/var/run/dns.sock"))


def test_get_resolver_creates_one_per_loop(loop, server):
    first = get_resolver(loop, options(dns_servers=server.address))
    try:
        assert get_resolver(loop, options()) is first
        assert loop.resolve_host == first.resolve_host
        assert values(ask(loop, first, "www.test", A).message.answer) == [b"192.0.2.10"]
    finally:
        first.close()


# -- the wire codec -------------------------------------------------------------------------------
def test_build_query_keeps_case_and_adds_the_root():
    message = dnswire.build_query(".MiXeD.example", A, edns=False)
    assert message == struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0) + b"\x05MiXeD\x07example\x00\x00\x01\x00\x01"
    assert dnswire.build_query(".", NS, edns=False)[12:] == b"\x00\x00\x02\x00\x01"
    with_edns = dnswire.build_query("a", A)
    assert with_edns[10:12] == b"\x00\x01" and with_edns.endswith(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")


def test_name_limits():
    assert dnswire.name_labels("a" * 63) == [b"a" * 63]
    labels = ["b" * 63] * 3 + ["c" * 61]   # 4*64 - 2 + 1 = 255 bytes on the wire
    assert len(dnswire.encode_name(dnswire.name_labels(".".join(labels)))) == 255
    with pytest.raises(dnswire.BadName):
        dnswire.name_labels(".".join(labels) + "c")


def test_parse_refuses_pointer_loops_and_short_messages():
    header = struct.pack(">HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    with pytest.raises(dnswire.Malformed):
        dnswire.parse_message(header + b"\xc0\x0c\x00\x01\x00\x01")
    with pytest.raises(dnswire.Malformed):
        dnswire.parse_message(b"\x00\x01")
    with pytest.raises(dnswire.Malformed):
        dnswire.parse_message(header + b"\x05ab")


def test_parse_decompresses_names():
    header = struct.pack(">HHHHHH", 7, 0x8180, 1, 1, 0, 0)
    question = b"\x03www\x04test\x00\x00\x0f\x00\x01"
    mx = b"\xc0\x0c\x00\x0f\x00\x01\x00\x00\x00\x3c\x00\x07\x00\x0a\x02mx\xc0\x10"
    message = dnswire.parse_message(header + question + mx)
    assert message.question == (b"www.test.", MX, 1) and message.rcode == 0
    assert message.answer[0].fields == {"preference": 10, "value": b"mx.test."}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_raises_only_malformed(data):
    try:
        dnswire.parse_message(data)
    except dnswire.Malformed:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=63).filter(lambda b: b"." not in b), max_size=4))
def test_query_name_round_trip(labels):
    message = dnswire.build_query(b".".join(labels), TXT, edns=False)
    assert dnswire.parse_message(message).question == (dnswire.render_name(labels), TXT, 1)
