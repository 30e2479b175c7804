"""The Lua namespaces `net` and `util` as a script sees them, through the real engine
(smtpe.engine.Engine, lupa's Lua 5.1, no encoding: Lua strings are bytes)."""
import os

import pytest

from tests.support.engine import engine_with_script, lua

SCRIPT = b"""
function count(...) return select('#', ...) end

function hook.init()
    -- net.* works at start-up too, e.g. to build tables
    init_lan = net.is_ip_reserved("10.1.2.3", net.is_ip.LAN + net.is_ip.LOCAL)
end
"""


@pytest.fixture
def engine(tmp_path):
    return engine_with_script(tmp_path, SCRIPT)


# -- net.is_ip / is_ip_reserved -------------------------------------------------------------
def test_is_ip_table_values(engine):
    assert lua(engine, "return net.is_ip.RESTICTED, net.is_ip.LAN, net.is_ip.LOCAL, net.is_ip.ANY") == \
        (0x171F, 0x2E2, 0x80C, 0x1FFF)
    assert lua(engine, "return net.is_ip.V4, net.is_ip.TEST, net.is_ip.RESERVED, net.is_ip.SITE_LOCAL") == \
        (0x6000, 0x401, 0x100, 0x200)


def test_is_ip_reserved(engine):
    assert lua(engine, "return net.is_ip_reserved('192.168.1.1', net.is_ip.LAN + net.is_ip.LOCAL)") is True
    assert lua(engine, "return net.is_ip_reserved('127.0.0.1', net.is_ip.LOCAL)") is True
    assert lua(engine, "return net.is_ip_reserved('8.8.8.8', net.is_ip.RESTICTED)") is False
    assert lua(engine, "return net.is_ip_reserved('fe80::1', net.is_ip.RESTICTED)") is True
    assert lua(engine, "return net.is_ip_reserved('10.0.0.1')") is False   # bits default 0
    assert lua(engine, "return net.is_ip_reserved('nonsense', net.is_ip.ANY)") is False
    assert lua(engine, "return net.is_ip_reserved(nil, net.is_ip.ANY)") is False


def test_works_in_hook_init(engine):
    engine.run_init()
    assert lua(engine, "return init_lan") is True


# -- reverse_ip -----------------------------------------------------------------------------
def test_reverse_ip_flag_takes_numbers_and_booleans(engine):
    for arpa in ("1", "true"):
        assert lua(engine, "return net.reverse_ip('192.0.2.1', %s)" % arpa) == b"1.2.0.192.in-addr.arpa."
    for arpa in ("0", "false", "nil"):
        assert lua(engine, "return net.reverse_ip('192.0.2.1', %s)" % arpa) == b"1.2.0.192"
    assert lua(engine, "return net.reverse_ip('IPv6:2001:db8::1', 1)").endswith(b".8.b.d.0.1.0.0.2.ip6.arpa.")
    assert lua(engine, "return 'IN,PTR,' .. net.reverse_ip('::1', true)").startswith(b"IN,PTR,1.0.0.0.")


# -- contains_ip ----------------------------------------------------------------------------
def test_contains_ip(engine):
    assert lua(engine, "return net.contains_ip('10.0.0.0/8', '10.1.2.3')") is True
    assert lua(engine, "return net.contains_ip('10.0.0.0/8', '11.1.2.3')") is False
    assert lua(engine, "return net.contains_ip()") is True  # ::0/0 contains ::0
    assert lua(engine, "return net.contains_ip('2001:db8::/32', '2001:db8:1::1')") is True


# -- TLDs -----------------------------------------------------------------------------------
def test_tld_functions(engine):
    assert lua(engine, "return net.index_valid_tld('www.example.co.uk')") == 13
    assert lua(engine, "return net.index_valid_nth_tld('www.example.co.uk')") == 16
    assert lua(engine, "return net.index_valid_nth_tld('www.example.co.uk', 2)") == 13
    assert lua(engine, "return net.has_valid_tld('example.com.'), net.has_valid_tld('host.lan')") == (True, False)
    assert lua(engine, "return net.has_valid_nth_tld('example.co.uk', 2), net.has_valid_nth_tld('example.com', 2)") == \
        (True, False)
    assert lua(engine, "return net.index_valid_tld(nil), net.has_valid_tld(nil)") == (0, False)


# -- is_ipv4_in_name, find_ip, format_ip ------------------------------------------------------
def test_is_ipv4_in_name(engine):
    assert lua(engine, "return net.is_ipv4_in_name('1.2.3.4', 'adsl-001-002-003-004.example.com')") == 2
    assert lua(engine, "return net.is_ipv4_in_name('192.168.1.1', 'mail.example.com')") == 0
    assert lua(engine, "return net.is_ipv4_in_name('not-ip', 'x.example.com')") is None
    assert lua(engine, "return net.is_ipv4_in_name('1.2.3.4', 'x') > 0") is False  # a number, as scripts use it


def test_find_ip_returns_two_values_or_nil(engine):
    assert lua(engine, "return net.find_ip('connect from 192.0.2.1 port 25')") == (13, 9)
    assert lua(engine, "return net.find_ip('no ip here')") is None
    assert lua(engine, "return count(net.find_ip('a 10.0.0.1'))") == 2


def test_format_ip(engine):
    assert lua(engine, "return net.format_ip('192.0.2.1')") == b"192.0.2.1"  # not 0.0.0.0
    assert lua(engine, "return net.format_ip('::ffff:10.1.2.3', 1)") == b"10.1.2.3"
    assert lua(engine, "return net.format_ip('fe80::1')") == b"fe80:0:0:0:0:0:0:1"
    assert lua(engine, "return net.format_ip('fe80::1', 1), net.format_ip('fe80::1', true)") == (b"fe80::1", b"fe80::1")
    assert lua(engine, "return net.format_ip('fe80::1', 2)") == b"fe80:0000:0000:0000:0000:0000:0000:0001"
    assert lua(engine, "return net.format_ip('garbage')") == b""


# -- util -----------------------------------------------------------------------------------
def test_cpucount_and_getloadavg(engine):
    assert lua(engine, "return util.cpucount()") == (os.cpu_count() or 1)
    assert lua(engine, "local t = util.getloadavg(); return #t, t[1] == t['1m_avg'], "
                       "t[2] == t['5m_avg'], t[3] == t['15m_avg']") == (3, True, True, True)


def test_mkpath(engine, tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert lua(engine, "return util.mkpath('%s')" % target) is True
    assert target.is_dir()
    assert lua(engine, "return util.mkpath('%s')" % target) is True  # exists: fine
    (tmp_path / "file").write_bytes(b"")
    assert lua(engine, "return util.mkpath('%s')" % (tmp_path / "file")) is False
    assert lua(engine, "return util.mkpath('%s')" % (tmp_path / "file" / "sub")) is False
    assert lua(engine, "return util.mkpath('')") is True
    # backslashes and quotes are ordinary characters (the original made `w` + BS of `w\\b`)
    engine.lua.globals()[b"odd_path"] = os.fsencode(tmp_path / "w\\b 'q'")
    assert lua(engine, "return util.mkpath(odd_path)") is True
    assert (tmp_path / "w\\b 'q'").is_dir()


def test_date_to_time(engine):
    assert lua(engine, "return util.date_to_time('Sun, 21 Sep 2003 22:04:27 +0200')") == (31, 1064174667)
    assert lua(engine, "return util.date_to_time('garbage')") == 0
    assert lua(engine, "return count(util.date_to_time('garbage'))") == 1
    assert lua(engine, "return util.date_to_time(nil)") == 0
    assert lua(engine, "return util.date_to_time('2003-09-22T20:02:33+02:00')") == (25, 1064253753)
