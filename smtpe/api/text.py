"""Lua `text.*`: find (anchored glob match), natcmp (natural order) and split (tokens).

The algorithms are the original's (shared/spec/helpers.md §1, §7), in
smtpe._speedups.textfind. Lua-side conventions, as in the original:
* text.find(haystack, pattern, caseless=0) -> 1-based offset of the match, 0 if none or if
  an argument is nil. Binary-safe (the original stopped at a NUL byte).
* text.natcmp(a, b, caseless=0) -> -1, 0 or +1; nil sorts after every string, nil == nil.
* text.split(s, delims=" \\t") -> array of strings; nil for a nil string.
Flags accept numbers and booleans.
"""
from .._speedups import textfind
# While this module runs its first (only) import, the package attribute `text` is still the
# argument helper of smtpe/api/__init__.py; once the import ends, Python rebinds it to this
# module. So the helper is taken here, and other modules should take it from here.
from . import flag, string_arg as text_argument

DEFAULT_DELIMITERS = b" \t"


def find(haystack=None, pattern=None, caseless=None):
    haystack, pattern = text_argument(haystack), text_argument(pattern)
    if haystack is None or pattern is None:
        return 0
    return textfind.find(haystack, pattern, flag(caseless)) + 1


def natcmp(first=None, second=None, caseless=None):
    first, second = text_argument(first), text_argument(second)
    if first is None or second is None:
        return (first is None) - (second is None)
    return textfind.natcmp(first, second, flag(caseless))


def split_list(string=None, delims=None):
    """The tokens as a Python list (None for nil); the Lua function wraps it in a table."""
    string = text_argument(string)
    if string is None:
        return None
    return textfind.split(string, text_argument(delims, DEFAULT_DELIMITERS))


def install(api):
    table = api.namespace("text")

    def split(string=None, delims=None):
        tokens = split_list(string, delims)
        return None if tokens is None else api.table(*tokens)

    table[b"find"] = find
    table[b"natcmp"] = natcmp
    table[b"split"] = split
