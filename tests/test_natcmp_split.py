"""text.natcmp and text.split (smtpe._speedups.textfind.natcmp/split, smtpe.api.text):
the original's vectors, and property tests holding the Cython code to the plain-Python
statement in tests/reference/textfind_ref.py."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpe._speedups import textfind
from smtpe.api.text import natcmp as api_natcmp, split_list as api_split_list
from tests.reference import textfind_ref as reference
from tests.reference.vectors import cases, raw


# -- natcmp --------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", cases("natcmp.json"))
def test_natcmp_vector(vector):
    first, second, caseless = raw(vector["s1"]), raw(vector["s2"]), vector["caseless"]
    assert api_natcmp(first, second, caseless) == vector["expected"]
    assert reference.natcmp(first, second, caseless) == vector["expected"]
    if first is not None and second is not None:
        assert textfind.natcmp(first, second, bool(caseless)) == vector["expected"]


def test_natcmp_sorts_file_names_naturally():
    names = [b"img12.png", b"img10.png", b"IMG2.png", b"img1.png"]
    ordered = sorted(names, key=lambda name: _Natural(name, True))
    assert ordered == [b"img1.png", b"IMG2.png", b"img10.png", b"img12.png"]


class _Natural:
    def __init__(self, text, caseless):
        self.text, self.caseless = text, caseless

    def __lt__(self, other):
        return textfind.natcmp(self.text, other.text, self.caseless) < 0


def test_natcmp_sees_a_c_string():
    """As in the original (luaL_optstring), the text ends at the first NUL."""
    assert textfind.natcmp(b"a\0zzz", b"a") == 0
    assert textfind.natcmp(b"a\0", b"a\0b") == 0


# -- split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("vector", cases("split.json"))
def test_split_vector(vector):
    text, delims = raw(vector["string"]), raw(vector["delims"])
    expected = [raw(token) for token in vector["expected"]]
    assert api_split_list(text, delims) == expected
    assert reference.split(text, delims) == expected
    assert textfind.split(text, b" \t" if delims is None else delims) == expected


def test_split_of_nil_is_nil():
    assert api_split_list(None) is None
    assert api_split_list(None, b",") is None


def test_split_sees_a_c_string():
    """As in the original (luaL_optstring), string and delimiters end at the first NUL."""
    assert textfind.split(b"a b\0c d", b" ") == [b"a", b"b"]
    assert textfind.split(b"a,b;c", b";\0,") == [b"a,b", b"c"]


def test_split_keeps_high_bytes_as_ordinary_bytes():
    assert textfind.split(b"\xffa b\xe9 \x80", b" ") == [b"\xffa", b"b\xe9", b"\x80"]


# -- property tests: Cython against the plain-Python statement -------------------------------
NAT_BYTES = st.sampled_from(list(b"0123 \tab_AB.-") + [0x00, 0x80, 0xE9])


@settings(max_examples=3000, deadline=None)
@given(first=st.lists(NAT_BYTES, max_size=12).map(bytes),
       second=st.lists(NAT_BYTES, max_size=12).map(bytes), caseless=st.booleans())
def test_natcmp_agrees_with_reference(first, second, caseless):
    assert textfind.natcmp(first, second, caseless) == reference.natcmp(first, second, caseless)


SPLIT_BYTES = st.sampled_from(list(b"ab ,;'\"\\tns\t") + [0x00, 0xFF])


@settings(max_examples=3000, deadline=None)
@given(text=st.lists(SPLIT_BYTES, max_size=16).map(bytes),
       delims=st.lists(st.sampled_from(list(b" ,;'\\a") + [0x00]), max_size=3).map(bytes))
def test_split_agrees_with_reference(text, delims):
    assert textfind.split(text, delims) == reference.split(text, delims)
