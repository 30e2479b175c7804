"""text.find's glob matcher (smtpe._speedups.textfind.find): the original's vectors, the
examples of its TextFind.txt, smtpe's deliberate differences, and property tests holding the
Cython code to the plain-Python statement in tests/reference/textfind_ref.py."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpe._speedups import textfind
from tests.reference import textfind_ref as reference
from tests.reference.vectors import cases, raw, read_bytes


# -- vectors from the original C -----------------------------------------------------------
@pytest.mark.parametrize("vector", cases("textfind.json"))
def test_vector_matches_original(vector):
    haystack, needle = raw(vector["haystack"]), raw(vector["needle"])
    caseless = bool(vector["caseless"])
    assert textfind.find(haystack, needle, caseless) == vector["c_offset"]
    assert reference.find(haystack, needle, caseless) == vector["c_offset"]


# -- the examples of TextFind.txt (the original's documentation) ----------------------------
EXAMPLES = {  # pattern: (haystacks it matches, haystacks it does not)
    b"abc": ([b"abc"], [b"abcd", b"xabc", b"ab"]),
    b"abc*": ([b"abc", b"abcdef"], [b"xabc"]),
    b"*abc": ([b"abc", b"xxabc"], [b"abcx"]),
    b"abc*def": ([b"abcdef", b"abc xyz def"], [b"abc def x", b"x abc def"]),
    b"*abc*def*": ([b"abcdef", b"x abc y def z"], [b"def abc"]),
    b"a[]]c": ([b"a]c"], [b"abc", b"a]]c"]),
    b"[abc]": ([b"a", b"b", b"c"], [b"d", b"ab", b""]),
    b"[^abc]": ([b"d", b"z"], [b"a", b"b", b"c"]),
    b"[a-z]": ([b"a", b"m", b"z"], [b"A", b"0", b"{"]),
    b"[0-9]": ([b"0", b"5", b"9"], [b"a", b"/", b":"]),
    b"[-ac]": ([b"-", b"a", b"c"], [b"b"]),
    b"[]-ac]": ([b"]", b"-", b"a", b"c"], [b"b"]),
    b"[^-ac]": ([b"b", b"x"], [b"-", b"a", b"c"]),
    b"[^]-ac]": ([b"b"], [b"]", b"-", b"a", b"c"]),
}


def test_textfind_txt_examples_behave_as_documented():
    text = read_bytes("TextFind.txt")
    # Example lines look like `"pattern"<TAB>description` (two lack the closing quote).
    documented = set(re.findall(rb'^"([^"\t]+)"?\t', text, re.MULTILINE))
    assert documented == set(EXAMPLES)
    for pattern, (matching, other) in EXAMPLES.items():
        for haystack in matching:
            assert textfind.find(haystack, pattern) >= 0, (pattern, haystack)
        for haystack in other:
            assert textfind.find(haystack, pattern) == -1, (pattern, haystack)


# -- behaviour worth pinning down -------------------------------------------------------------
def test_offset_is_where_the_part_after_a_leading_star_matches():
    assert textfind.find(b"abcabc", b"*abc") == 3
    assert textfind.find(b"1st abc 2nd abc", b"*abc*") == 4
    assert textfind.find(b"x abc", b"*") == 0
    assert textfind.find(b"", b"***") == 0


def test_space_matches_any_white_space_byte_but_escaped_space_only_a_space():
    for byte in b" \t\n\v\f\r":
        assert textfind.find(b"a%cb" % byte, b"a b") == 0
    assert textfind.find(b"a\xa0b", b"a b") == -1
    assert textfind.find(b"a\tb", b"a\\ b") == -1


def test_caseless_folds_ascii_only_and_never_an_escaped_byte():
    assert textfind.find(b"HELLO", b"hello", True) == 0
    assert textfind.find(b"\xc9", b"\xe9", True) == -1
    assert textfind.find(b"aBc", b"a\\Bc", True) == 0
    assert textfind.find(b"abc", b"a\\Bc", True) == -1


def test_class_ranges_compare_signed_chars_like_the_original():
    assert textfind.find(b"\x90", b"[\x80-\xff]") == 0
    assert textfind.find(b"\x90", b"[ -\xff]") == -1   # 0xff is -1 as a C char


def test_many_stars_on_a_long_haystack_finish():
    """The original's recursion is exponential in the number of stars; the Cython matcher
    remembers only the last star, so this returns at once."""
    haystack = b"a" * 5000
    assert textfind.find(haystack, b"*a*a*a*a*a*a*a*a*a*a*b") == -1
    assert textfind.find(haystack + b"b", b"*a*a*a*a*a*a*a*a*a*a*b") == 0


# -- deliberate differences from the original ------------------------------------------------
def test_nul_is_an_ordinary_byte():
    """The original saw C strings and stopped at a NUL: find("abc\\0def", "abc") matched and
    "*def" did not. smtpe is binary-safe, so a NUL cannot hide the rest of a message from a
    content rule."""
    assert textfind.find(b"abc\0def", b"abc") == -1
    assert textfind.find(b"abc\0def", b"*def") == 4
    assert textfind.find(b"abc\0def", b"abc?def") == 0


def test_trailing_hyphen_in_a_class_is_a_literal():
    """`[a-]` ran past the class in the original and crashed (helpers.md §1 point 6)."""
    assert textfind.find(b"-", b"[a-]") == 0
    assert textfind.find(b"a", b"[a-]") == 0
    assert textfind.find(b"b", b"[a-]") == -1
    assert textfind.find(b"b", b"[^a-]") == 0
    assert textfind.find(b"x-", b"x[a-]") == 0


def test_patterns_that_can_never_match():
    assert textfind.find(b"abc", b"abc\\") == -1          # trailing backslash
    assert textfind.find(b"abc\\", b"abc\\") == -1
    assert textfind.find(b"[abc", b"[abc") == -1          # unterminated class
    assert textfind.find(b"a", b"*[a") == -1


# -- property tests: Cython against the plain-Python statement -------------------------------
PATTERN_BYTES = st.sampled_from(list(b"ab*?[]^!-\\ A") + [0x00, 0x80, 0xE9, 0xFF])
HAY_BYTES = st.sampled_from(list(b"abAB]-\\ \t^!*?[") + [0x00, 0x80, 0xE9, 0xFF])


@settings(max_examples=3000, deadline=None)
@given(haystack=st.lists(HAY_BYTES, max_size=16).map(bytes),
       pattern=st.lists(PATTERN_BYTES, max_size=9).map(bytes),
       caseless=st.booleans())
def test_find_agrees_with_reference(haystack, pattern, caseless):
    assert textfind.find(haystack, pattern, caseless) == reference.find(haystack, pattern, caseless)


CLASS_BYTES = st.sampled_from(list(b"aZz09-\\]^!") + [0x00, 0x7F, 0x80, 0xC9, 0xE9, 0xFF])


@settings(max_examples=1500, deadline=None)
@given(members=st.lists(CLASS_BYTES, max_size=7).map(bytes), caseless=st.booleans())
def test_class_membership_agrees_with_reference_for_every_byte(members, caseless):
    pattern = b"[" + members + b"]"
    for byte in range(256):
        haystack = bytes([byte])
        assert (textfind.find(haystack, pattern, caseless)
                == reference.find(haystack, pattern, caseless)), (pattern, byte)


@settings(max_examples=500, deadline=None)
@given(haystack=st.binary(max_size=200), data=st.data())
def test_substring_pattern_finds_the_first_occurrence(haystack, data):
    """`*needle*` with a plain needle finds the first occurrence, as bytes.find does."""
    needle = data.draw(st.binary(min_size=1, max_size=4).filter(
        lambda text: not any(byte in b"*?[\\ " for byte in text)))
    expected = haystack.find(needle)
    assert textfind.find(haystack, b"*" + needle + b"*") == expected
