"""The Lua namespaces `text` and `md5` as a script sees them, through the real engine
(smtpe.engine.Engine, lupa's Lua 5.1, no encoding: Lua strings are bytes)."""
import hashlib

import pytest

from tests.reference import ixhash_ref
from tests.reference.vectors import read_bytes
from tests.support.engine import engine_with_script, lua

SCRIPT = b"""
-- Helpers the tests call, written the way a policy script would use the API.
function body_digests(body)
    local digests = {}
    for n = 1, 3 do
        local m = md5.new()
        if m["use_ixhash" .. n](m, body) then
            m["ixhash" .. n](m, body)
            digests[n] = m:done()
        end
    end
    return digests
end

function chunked_ixhash(method, ...)
    local m = md5.new()
    for _, chunk in ipairs({...}) do
        m["ixhash" .. method](m, chunk)
    end
    return m:done()
end

function hook.init()
    local m = md5.new()
    m:append("abc")
    init_digest = m:done()
    init_found = text.find("Subject: hello", "subject:*", 1)
end
"""


@pytest.fixture
def engine(tmp_path):
    return engine_with_script(tmp_path, SCRIPT)


# -- text.find ------------------------------------------------------------------------------------
def test_find_returns_one_based_offsets_and_zero_for_no_match(engine):
    assert lua(engine, "return text.find('blah def', '*def')") == 6
    assert lua(engine, "return text.find('abc', 'abc')") == 1
    assert lua(engine, "return text.find('xabcx', 'abc')") == 0
    assert lua(engine, "return text.find(nil, 'abc')") == 0
    assert lua(engine, "return text.find('abc', nil)") == 0


def test_find_caseless_flag_accepts_numbers_and_booleans(engine):
    assert lua(engine, "return text.find('ABC', 'abc', 1)") == 1
    assert lua(engine, "return text.find('ABC', 'abc', true)") == 1
    assert lua(engine, "return text.find('ABC', 'abc', 0)") == 0
    assert lua(engine, "return text.find('ABC', 'abc', false)") == 0
    assert lua(engine, "return text.find('ABC', 'abc')") == 0


def test_find_takes_numbers_as_strings_and_is_binary_safe(engine):
    assert lua(engine, "return text.find(12345, '*34*')") == 3
    assert lua(engine, "return text.find('a\\0b', 'a?b')") == 1


def test_find_rejects_a_table_with_a_lua_error(engine):
    ok, error = lua(engine, "return pcall(text.find, {}, 'a')")
    assert ok is False
    assert "string expected" in str(error)


# -- text.natcmp -----------------------------------------------------------------------------------
def test_natcmp_orders_numbers_naturally_and_nil_last(engine):
    assert lua(engine, "return text.natcmp('a2', 'a10')") == -1
    assert lua(engine, "return text.natcmp('abc', 'ABC', 1)") == 0
    assert lua(engine, "return text.natcmp('abc', 'ABC', true)") == 0
    assert lua(engine, "return text.natcmp(nil, 'a')") == 1
    assert lua(engine, "return text.natcmp('a', nil)") == -1
    assert lua(engine, "return text.natcmp(nil, nil)") == 0


def test_natcmp_as_a_table_sort_comparator(engine):
    result = lua(engine, """
        local names = {"file10.txt", "file9.txt", "File1.txt", "file2.txt"}
        table.sort(names, function(a, b) return text.natcmp(a, b, 1) < 0 end)
        return table.concat(names, ",")""")
    assert result == b"File1.txt,file2.txt,file9.txt,file10.txt"


# -- text.split ----------------------------------------------------------------------------------------
def test_split_returns_an_array(engine):
    assert lua(engine, "local t = text.split('a b\\tc'); return #t, t[1], t[2], t[3]") == (3, b"a", b"b", b"c")
    assert lua(engine, "local t = text.split(\"a,'b,c'd,,e\", ','); return #t, t[2], t[3]") == (3, b"b,cd", b"e")
    assert lua(engine, "return #text.split('')") == 0
    assert lua(engine, "return text.split(nil)") is None


# -- md5 ------------------------------------------------------------------------------------------------
def test_md5_object_is_userdata_with_colon_methods(engine):
    assert lua(engine, "return type(md5.new())") == b"userdata"
    assert lua(engine, "local m = md5.new(); m:append('a'); m:append('bc'); return m:done()") \
        == hashlib.md5(b"abc").hexdigest().encode()
    assert lua(engine, "local m = md5.new(); m:append(nil); return m:done()") \
        == hashlib.md5(b"").hexdigest().encode()


def test_md5_append_is_binary_safe(engine):
    assert lua(engine, "local m = md5.new(); m:append('\\0\\255'); return m:done()") \
        == b"d07d34efac6328007ad67c7e0a985e00"


def test_done_resets_the_object(engine):
    first, second = lua(engine, """
        local m = md5.new(); m:append('abc')
        local first = m:done()
        m:append('abc')
        return first, m:done()""")
    assert first == second == hashlib.md5(b"abc").hexdigest().encode()
    assert lua(engine, "local m = md5.new(); m:done(); return m:done()") \
        == hashlib.md5(b"").hexdigest().encode()


def test_ixhash_digests_of_ixhash_eml_body(engine):
    message = read_bytes("ixhash.eml")
    body = message[message.index(b"\n\n") + 2:]
    digests = engine.lua.globals()[b"body_digests"](body)
    assert digests[1] == b"cbdc00eaaf002aad4448b75f47a9784f"
    assert digests[2] == b"464d43b6999bdbdf6071b8b1d3f9a525"
    assert digests[3] == ixhash_ref.plugin_digest(3, body).encode()


def test_ixhash_conditions_gate_the_digests(engine):
    digests = engine.lua.globals()[b"body_digests"](b"abcdeeefgh\n")
    assert list(digests.keys()) == [3]
    assert digests[3] == b"e8dc4081b13434b45189a720b77b6818"


def test_ixhash_in_chunks_equals_whole(engine):
    chunked = engine.lua.globals()[b"chunked_ixhash"]
    body = b"Hello  there,\r\n\r\n  this is\t\ta (test) of _chunks_ !!\r\n" * 9
    for method in (1, 2, 3):
        whole = ixhash_ref.plugin_digest(method, body).encode()
        assert chunked(method, body) == whole
        assert chunked(method, body[:7], body[7:8], body[8:300], body[300:]) == whole
    assert chunked(1, b"a b\r", b"\nc d\n") == chunked(1, b"a b\r\nc d\n")


def test_append_ends_an_ixhash_body_and_hashes_after_it(engine):
    body = b"a (b) c! d?"
    ours = lua(engine, "local m = md5.new(); m:ixhash2('a (b) c! d?'); m:append('tail'); return m:done()")
    assert ours == hashlib.md5(ixhash_ref.plugin_filtered(2, body) + b"tail").hexdigest().encode()


def test_switching_method_ends_the_previous_body(engine):
    ours = lua(engine, "local m = md5.new(); m:ixhash3('aa bb'); m:ixhash2('((x))'); return m:done()")
    expected = ixhash_ref.plugin_filtered(3, b"aa bb") + ixhash_ref.plugin_filtered(2, b"((x))")
    assert ours == hashlib.md5(expected).hexdigest().encode()


def test_use_ixhash_does_not_touch_the_object(engine):
    result = lua(engine, """
        local m = md5.new()
        local a, b, c = m:use_ixhash1(string.rep(' ', 30) .. '\\n\\n'), m:use_ixhash2('(('), m:use_ixhash3('12345678')
        return a, b, c, m:done()""")
    assert result == (True, False, True, hashlib.md5(b"").hexdigest().encode())


def test_api_works_inside_a_hook(engine):
    engine.run_init()
    globals_ = engine.lua.globals()
    assert globals_[b"init_digest"] == hashlib.md5(b"abc").hexdigest().encode()
    assert globals_[b"init_found"] == 1
