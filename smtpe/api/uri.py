"""Lua `uri.*`: parse, encode and decode (the rules are in smtpe/uri.py, after the
original's libsnert uri.c: shared/spec/helpers.md §4.1-4.2).

* uri.parse(s) -> {uri_raw, uri_decoded, scheme, scheme_info, user_info, host, port, path,
  query, fragment} (absent parts nil, port an integer) or nil when s is not a URI;
* uri.encode(s) -> s with every byte but letters, digits and `-_.~` as %XX;
* uri.decode(s) -> %XX and `+` decoded (binary-safe: `%00` is a NUL byte).
A nil argument gives nil (the original crashed). `uri.found`, the URIs of the current
message, is the connection's own table, filled on demand by smtpe.api.mime (which also keeps
`found` out of this table's raw keys: see there).
"""
from .. import uri as uri_rules
from .text import text_argument   # see smtpe/api/text.py: `from . import text` is ambiguous


def encode(value=None):
    value = text_argument(value)
    return None if value is None else uri_rules.encode(value)


def decode(value=None):
    value = text_argument(value)
    return None if value is None else uri_rules.decode(value)


def install(api):
    table = api.namespace("uri")

    def parse(value=None):
        value = text_argument(value)
        fields = None if value is None else uri_rules.parse(value)
        return None if fields is None else api.table_from(fields)

    table[b"parse"] = parse
    table[b"encode"] = encode
    table[b"decode"] = decode
