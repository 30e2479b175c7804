"""The Lua side of MIME and URIs through the real engine (smtpe.engine.Engine, lupa's Lua 5.1,
no encoding: Lua strings are bytes): `uri.parse/encode/decode`, and `mime.parts` /
`uri.found` as smtpe.api.mime fills them from a finished scanner (MessageTables.fill)."""
import hashlib
import os

import pytest

from smtpe._speedups.scanner import MessageScanner
from tests.support.engine import engine_with_script, lua

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mime")

SCRIPT = b"""
-- How a policy reads the tables (the original's engine script does much the same).
function found_hosts()
    local hosts = {}
    for i, key in ipairs(uri.found) do
        hosts[#hosts + 1] = uri.found[key].host or "-"
    end
    return table.concat(hosts, " ")
end

function part_types()
    local types = {}
    for i = 1, #mime.parts do
        types[#types + 1] = mime.parts[i].content_type or "-"
    end
    return table.concat(types, "|")
end
"""

MESSAGE = (b"From: a@example.com\r\nSubject: links http://header.example.com/\r\n"
           b"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\n"
           b"See http://www.example.com/a and www.example.org, mail bob@example.net.\r\n"
           b"Again http://www.example.com/a\r\n"
           b"--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           b"<a href=3D\"http://www.example.com/a\">x</a> <a href=3D\"ftp://files.example.com:2121/x\">y</a>\r\n"
           b"--b--\r\n")


@pytest.fixture
def engine(tmp_path):
    return engine_with_script(tmp_path, SCRIPT)


def published(engine, message):
    scanner = MessageScanner()
    scanner.feed(message)
    scanner.finish()
    ctx = engine.new_context()
    ctx.message_tables.fill(scanner)
    engine.enter(ctx)
    return ctx


# -- uri.parse / encode / decode --------------------------------------------------------------
def test_parse_returns_a_table_of_bytes_and_an_integer_port(engine):
    assert lua(engine, "local u = uri.parse('HTTP://www.Example.com:8080/p?q=1#f') "
                       "return u.scheme, u.host, u.port, u.path, u.query, u.fragment, u.user_info, "
                       "u.scheme_info, u.uri_raw, u.uri_decoded, u.port + 1") == \
        (b"HTTP", b"www.Example.com", 8080, b"/p", b"q=1", b"f", None,
         b"//www.Example.com:8080/p?q=1#f", b"HTTP://www.Example.com:8080/p?q=1#f",
         b"HTTP://www.Example.com:8080/p?q=1#f", 8081)


def test_parse_mail_address_and_implicit_domain(engine):
    assert lua(engine, "local m, d = uri.parse('mailto:bob@example.net?subject=x'), uri.parse('example.org/x') "
                       "return m.scheme, m.user_info, m.host, m.port, m.query, d.scheme, d.host, d.path, d.port") == \
        (b"mailto", b"bob", b"example.net", 25, b"subject=x", b"http", b"example.org", b"/x", 80)


def test_parse_gives_nil_for_non_uris_and_nil(engine):
    assert lua(engine, "return uri.parse('news:comp.lang.c'), uri.parse(''), uri.parse(nil), uri.parse(42)") == \
        (None, None, None, None)


def test_encode_and_decode(engine):
    assert lua(engine, "return uri.encode('a b/c?d=\\233'), uri.decode('a%20b+c%2Fd'), uri.decode('x%00y')") == \
        (b"a%20b%2Fc%3Fd%3D%E9", b"a b c/d", b"x\x00y")
    assert lua(engine, "return uri.encode(nil), uri.decode(nil), uri.encode(12)") == (None, None, b"12")


# -- mime.parts -----------------------------------------------------------------------------
def test_mime_parts_after_publish(engine):
    published(engine, MESSAGE)
    assert lua(engine, "return #mime.parts") == 3
    assert lua(engine, "return part_types()") == \
        b"Content-Type: multipart/alternative; boundary=\"b\"|Content-Type: text/plain|Content-Type: text/html"
    body = b"<a href=3D\"http://www.example.com/a\">x</a> <a href=3D\"ftp://files.example.com:2121/x\">y</a>"
    assert lua(engine, "local p = mime.parts[3] return p.md5_encoded, p.body_length, p.content_transfer_encoding") == \
        (hashlib.md5(body).hexdigest().encode(), len(body), b"Content-Transfer-Encoding: quoted-printable")
    assert lua(engine, "local p = mime.parts[1] return p.content_transfer_encoding, p.body_length, p.md5_decoded") == \
        (None, 0, hashlib.md5(b"").hexdigest().encode())


# -- uri.found ------------------------------------------------------------------------------
def test_uri_found_holds_each_uri_once_in_order_keyed_by_md5(engine):
    published(engine, MESSAGE)
    # headers are not searched; `www.example.org,` is lost as in the original; the
    # trailing dot of `bob@example.net.` goes; the HTML copy of the first URL is a duplicate
    assert lua(engine, "return found_hosts()") == b"www.example.com example.net files.example.com"
    assert lua(engine, "return #uri.found") == 3
    key = hashlib.md5(b"http://www.example.com/a").hexdigest().encode()
    assert lua(engine, "return uri.found[1]") == key
    assert lua(engine, "local u = uri.found[uri.found[1]] return u.uri_raw, u.mime_part, u.port, u.query") == \
        (b"http://www.example.com/a", 2, 80, None)
    assert lua(engine, "local u = uri.found[uri.found[3]] return u.port, u.mime_part") == (2121, 3)


def test_each_connection_has_its_own_tables(engine):
    first = published(engine, MESSAGE)
    second = published(engine, b"Subject: x\r\n\r\nonly http://other.example.com/ here\r\n")
    assert lua(engine, "return found_hosts(), #mime.parts") == (b"other.example.com", 1)
    engine.enter(first)
    assert lua(engine, "return #uri.found, #mime.parts") == (3, 3)
    first.new_transaction_tables()          # the next MAIL starts empty tables, which
    engine.enter(first)                     # its next hook gets (HookRun.step enters them)
    assert lua(engine, "return #uri.found, #mime.parts") == (0, 0)
    engine.enter(second)
    assert lua(engine, "return #uri.found") == 1


def test_publish_of_a_message_from_the_test_data(engine):
    with open(os.path.join(DATA, "nested.eml"), "rb") as handle:
        published(engine, handle.read())
    assert lua(engine, "return found_hosts(), #mime.parts") == (b"docs.example.com www.example.org", 7)
