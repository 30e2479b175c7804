"""smtpe.uri: uri.parse / encode / decode against the original's vectors (uri_parse.json,
made by running libsnert's uriParse2/uriEncode/uriDecode), smtpe's deliberate differences,
and properties of the token clean-up the message scanner relies on."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpe import uri
from tests.reference.vectors import cases, raw

# Where the original had a bug, smtpe does what was intended (shared/spec/helpers.md §4.1,
# §4.2): input -> (why, the fields that differ from the original's output).
INTENDED = {
    # The original measured the host before taking `user:pass@` off, so the host kept
    # `:port` and the explicit port was ignored (helpers.md §4.1 step 5, "Bug").
    b"https://user:pass@host.example.com:8443/p?q#f":
        ("port after user:pass", {"host": b"host.example.com", "port": 8443}),
    b"ftp://user:pw@ftp.example.com:2121/pub":
        ("port after user:pass", {"host": b"ftp.example.com", "port": 2121}),
    # The original decoded `+` to a space before reading the local part, so everything up to
    # the `+` was lost; `+` is an ordinary local-part character (RFC 5322 atext).
    b"user.name+tag@sub.example.co.uk":
        ("+ in a local part", {"uri_decoded": b"user.name+tag@sub.example.co.uk",
                               "scheme_info": b"user.name+tag@sub.example.co.uk",
                               "user_info": b"user.name+tag"}),
    b"a+b@example.com":
        ("+ in a local part", {"uri_decoded": b"a+b@example.com", "scheme_info": b"a+b@example.com",
                               "user_info": b"a+b"}),
}
# uri.decode is binary-safe: the original returned a C string, cut at the first NUL.
INTENDED_DECODE = {b"a%00b": b"a\x00b"}


def expected_fields(vector):
    expected = vector["expected"]
    if expected is None:
        return None
    fields = {name: raw(value) if isinstance(value, str) else value for name, value in expected.items()}
    if raw(vector["input"]) in INTENDED:
        fields.update(INTENDED[raw(vector["input"])][1])
    return fields


@pytest.mark.parametrize("vector", cases("uri_parse.json", "parse"))
def test_parse_vector(vector):
    assert uri.parse(raw(vector["input"])) == expected_fields(vector)


def test_every_deliberate_difference_is_a_vector():
    inputs = {raw(vector["input"]) for vector in cases("uri_parse.json", "parse") if vector}
    assert set(INTENDED) <= inputs


@pytest.mark.parametrize("vector", cases("uri_parse.json", "encode"))
def test_encode_vector(vector):
    assert uri.encode(raw(vector["input"])) == raw(vector["expected"])


@pytest.mark.parametrize("vector", cases("uri_parse.json", "decode"))
def test_decode_vector(vector):
    data = raw(vector["input"])
    assert uri.decode(data) == INTENDED_DECODE.get(data, raw(vector["expected"]))


# -- behaviour worth pinning down -------------------------------------------------------------
def test_port_after_user_info_without_password():
    fields = uri.parse(b"http://user@host.example.com:8080/x")
    assert (fields["user_info"], fields["host"], fields["port"], fields["path"]) == \
        (b"user", b"host.example.com", 8080, b"/x")


def test_junk_prefix_stays_in_uri_raw_only():
    fields = uri.parse(b"3D=22http://www.example.com/x")
    assert fields["uri_raw"] == b"3D=22http://www.example.com/x"
    assert fields["uri_decoded"] == b"http://www.example.com/x"
    assert fields["scheme"] == b"http"


def test_implicit_domains_need_a_known_top_level_domain():
    assert uri.parse(b"www.example.com")["host"] == b"www.example.com"
    assert uri.parse(b"www.example.invalidtld") is None
    assert uri.parse(b"www.example.org,") is None      # the original lost these too


def test_tld_lookup_can_be_replaced():
    try:
        uri.set_tld_index(lambda domain: len(domain) - 3 if domain.endswith(b".zz") else 0)
        assert uri.parse(b"www.example.zz")["host"] == b"www.example.zz"
        assert uri.parse(b"www.example.com") is None
    finally:
        uri.set_tld_index(None)
    assert uri.parse(b"www.example.com") is not None


def test_stops_at_nul_byte():
    assert uri.parse(b"http://www.example.com/a\0junk")["path"] == b"/a"


def test_clean_token_strips_attribute_brackets_quotes_and_underscores():
    assert uri.clean_token(b"href=http://x.example.com/") == b"http://x.example.com/"
    assert uri.clean_token(b"(http://x.example.com/)") == b"http://x.example.com/"
    assert uri.clean_token(b"'http://x.example.com/'") == b"http://x.example.com/"
    assert uri.clean_token(b"__http://x.example.com/__") == b"http://x.example.com/"
    assert uri.clean_token(b"src=(x)") == b"x"
    assert uri.clean_token(b"a=b=c") == b"b=c"            # one attribute prefix only


# -- properties -------------------------------------------------------------------------------
URIISH = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"http", b"://", b":", b"/", b"www", b".", b"example", b"com", b"@", b"%41",
                     b"%", b"+", b"?", b"#", b"[", b"]", b"1", b"255", b"::", b"mailto:", b"_", b"-",
                     b"\xe9", b"org", b"a", b"file", b"=", b"(", b")", b"'"]),
    max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(URIISH)
def test_parse_never_fails_and_reports_its_input(data):
    fields = uri.parse(data)
    if fields is not None:
        expected_raw = data.split(b"\0")[0]
        if expected_raw.endswith(b"."):
            expected_raw = expected_raw[:-1]
        assert fields["uri_raw"] == expected_raw
        assert isinstance(fields["port"], int) and fields["scheme"]


@settings(max_examples=400, deadline=None)
@given(URIISH)
def test_tokens_may_be_uri_rejects_only_non_uris(token):
    # the scanner skips tokens may_be_uri() rejects, so this must hold for every token
    if not uri.may_be_uri(token):
        assert uri.parse(token) is None


@given(st.binary(max_size=64))
def test_decode_undoes_encode(data):
    encoded = uri.encode(data)
    assert uri.decode(encoded) == data
    assert all(byte in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%"
               for byte in encoded)
