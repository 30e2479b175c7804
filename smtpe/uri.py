"""URIs the way the original (libsnert uri.c) read them: shared/spec/helpers.md §4.

* parse(raw) -> dict of uri_raw, uri_decoded, scheme, scheme_info, user_info, host, port,
  path, query, fragment (bytes, None when absent; port an int), or None when `raw` is not a
  URI the original would report. §4.1, with the intended behaviour where it notes bugs:
  - `user:pass@host:port`: the port is read and the host is only the host (the original
    measured the host before taking the user info off, keeping `:port` in it);
  - `+` in an e-mail local part stays `+` (the original turned it into a space first, so
    `a+b@example.com` lost `a+`); a percent-encoded space still splits the local part.
* encode(raw) / decode(raw): §4.2. decode is binary-safe (`%00` gives a NUL byte; the
  original's C string stopped there).
* clean_token(token), may_be_uri(token): the clean-up the message scanner applies to a body
  token before parsing it (§4.3), and the cheap test that tells which cannot be URIs at all.

Implicit domains (`www.example.com`) must end in a known top-level domain, by the tables
behind net.index_valid_tld (smtpe.tld); set_tld_index() can put others in their place.
"""
import ipaddress
import re

# Schemes the original knew, in its table order, with their default ports: -1 marks every
# other scheme, which the final check rejects.
SCHEME_PORTS = (
    (b"ftp", 21), (b"gopher", 70), (b"http", 80), (b"https", 443), (b"imap", 143),
    (b"ldap", 389), (b"mailto", 25), (b"smtp", 25), (b"email", 25), (b"mail", 25),
    (b"from", 25), (b"nntp", 119), (b"pop", 110), (b"pop3", 110), (b"telnet", 23),
    (b"rtsp", 554), (b"ip", 0), (b"cid", 0), (b"mid", 0), (b"data", 0), (b"file", 0),
    (b"about", 0), (b"javascript", 0),
)
_PORT_OF_SCHEME = dict(SCHEME_PORTS)
MAIL_PORT = 25

_SCHEME = re.compile(rb"[A-Za-z0-9][A-Za-z0-9+.\-]*:")
_HEX_NAME = re.compile(rb"[0-9A-Fa-f]*:")     # what an IPv6 literal starts with
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")
_IPV4 = re.compile(rb"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![0-9.])")
_PORT = re.compile(rb"\d*")
# RFC 3986 characters: where a fully percent-encoded URI is cut (§4.1 step 3)
_URI_CHARACTERS = re.compile(rb"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
# Dot-atom local parts (RFC 5322 atext and dots)
_ATEXT = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
_QUOTED_LOCAL = re.compile(rb'"[^"]*"\Z')
# Host names: labels of ASCII letters and digits, '-', '_' and any byte >= 0x80, single dots
_DOMAIN = re.compile(rb"[A-Za-z0-9_\x80-\xff-]+(?:\.[A-Za-z0-9_\x80-\xff-]+)*")
_HEX_COLON_DOT = frozenset(b"0123456789abcdefABCDEF:.")
_MAX_IPV6_TEXT = 45
_UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")
_ENCODED = [bytes([byte]) if byte in _UNRESERVED else b"%%%02X" % byte for byte in range(256)]
_DECODED = {b"%02x" % byte: bytes([byte]) for byte in range(256)}


# -- encode / decode ------------------------------------------------------------------------
def encode(raw):
    """Every byte but ASCII letters, digits and `-_.~` as %XX (upper-case hex)."""
    return b"".join([_ENCODED[byte] for byte in raw])


def _percent_byte(match):
    return _DECODED[match.group(1).lower()]


def decode(raw, plus_is_space=True):
    """%XX (either case) to the byte, `+` to a space; a malformed `%` stays as it is."""
    if plus_is_space:
        raw = raw.replace(b"+", b" ")
    if b"%" not in raw:
        return raw
    return _PERCENT.sub(_percent_byte, raw)


# -- top-level domains ----------------------------------------------------------------------
_tld_index = None


def set_tld_index(function):
    """Judge implicit domains with function(domain) -> 1-based offset of its known TLD suffix,
    0 if none (the Lua net.index_valid_tld convention). None: smtpe.tld's lists."""
    global _tld_index
    _tld_index = function


def _has_known_tld(domain):
    """A known TLD with at least one label before it (the original's indexValidTLD > 0)."""
    global _tld_index
    if _tld_index is None:
        from .tld import index_valid_tld   # net.*'s tables (IANA and Public Suffix List)
        _tld_index = index_valid_tld
    return _tld_index(domain) > 1


# -- hosts ----------------------------------------------------------------------------------
def _ipv6_length(data, start=0):
    """Length of the IPv6 literal at data[start:] (0 if none); trailing bytes are ignored,
    as the original's lenient parser did."""
    end = start
    limit = min(len(data), start + _MAX_IPV6_TEXT)
    while end < limit and data[end] in _HEX_COLON_DOT:
        end += 1
    while end - start >= 2:
        text = data[start:end]
        if text.count(b":") >= 2:
            try:
                ipaddress.IPv6Address(text.decode("ascii"))
                return end - start
            except ValueError:
                pass
        end -= 1
    return 0


def _ipv4_length(data, start=0):
    """Length of the dotted quad at data[start:] (0 if none or an octet is over 255)."""
    match = _IPV4.match(data, start)
    if match is None or any(int(octet) > 255 for octet in match.groups()):
        return 0
    return match.end() - start


def _domain_span(data, start, min_dots):
    """End of the host name at data[start:], or -1: labels of letters, digits, `-`, `_` and
    bytes >= 0x80 joined by single dots, at least min_dots of them. A host name that runs to
    the end of data must end in a label of letters only (`www.example.com2` is no name)."""
    match = _DOMAIN.match(data, start)
    if match is None:
        return -1                              # nothing, or a leading dot
    end = match.end()
    if data[end:end + 2] == b"..":
        return -1                              # an empty label
    if data.count(b".", start, end) < min_dots:
        return -1
    if end == len(data) and not data[data.rfind(b".", start, end) + 1:end].isalpha():
        return -1
    return end


def _host_span(data, start):
    """(host, end) for the host at data[start:] in an authority: [IP], IP or name."""
    if data[start:start + 1] == b"[":
        close = data.find(b"]", start)
        inner = data[start + 1:close] if close > 0 else b""
        if inner and (_ipv6_length(inner) == len(inner) or _ipv4_length(inner) == len(inner)):
            return inner, close + 1
        return None, start
    length = _ipv4_length(data, start) if data[start:start + 1].isdigit() else 0
    if length:
        return data[start:start + length], start + length
    end = _domain_span(data, start, 0)
    if end < 0:
        return None, start
    return data[start:end], end


# -- the parts of a URI ---------------------------------------------------------------------
class _Uri:
    __slots__ = ("uri_raw", "uri_decoded", "scheme", "scheme_info", "user_info", "host",
                 "port", "path", "query", "fragment")

    def __init__(self, raw, decoded):
        self.uri_raw = raw
        self.uri_decoded = decoded
        self.scheme = self.scheme_info = self.user_info = self.host = None
        self.port = None
        self.path = self.query = self.fragment = None

    def result(self):
        """The table fields, or None when the final check fails: a scheme is needed, and a
        scheme with a port (80, 25, ...) needs a host; unknown schemes (port -1) fail."""
        if self.scheme is None:
            return None
        port = self.port if self.port is not None else _PORT_OF_SCHEME.get(self.scheme.lower(), -1)
        if port < 0 or (port > 0 and not self.host):
            return None
        return {"uri_raw": self.uri_raw, "uri_decoded": self.uri_decoded, "scheme": self.scheme,
                "scheme_info": self.scheme_info, "user_info": self.user_info, "host": self.host,
                "port": port, "path": self.path, "query": self.query, "fragment": self.fragment}


def _find_scheme(uri, decoded, raw):
    """Set uri.scheme, uri.uri_decoded, uri.scheme_info; return the value after `scheme:`
    (None if no scheme). A junk prefix before a known `scheme://` is skipped (§4.1 step 2)."""
    match = _SCHEME.match(decoded)
    if match is not None and not (_HEX_NAME.match(decoded) and _ipv6_length(decoded)):
        start, colon = 0, match.end() - 1
    else:
        colon = decoded.find(b"://")
        if colon <= 0 or colon + 3 >= len(decoded):
            return None
        prefix = decoded[:colon].lower()
        for name, _port in SCHEME_PORTS:
            if prefix.endswith(name):
                break
        else:
            return None
        start = colon - len(name)
        decoded = decoded[start:]
        colon -= start
    scheme = decoded[:colon]
    if scheme not in raw:
        # the scheme itself was percent-encoded: cut the decoded text at the first byte
        # that has no place in a URI (`%3E%3Cjunk` after an encoded URL)
        decoded = _URI_CHARACTERS.match(decoded).group(0)
    uri.scheme = scheme
    uri.uri_decoded = decoded
    uri.scheme_info = decoded[colon + 1:]
    return uri.scheme_info


def _split_fragment_and_query(uri, value):
    """Take `#fragment`, then `?query` off the value; return what is left."""
    value, hash_mark, fragment = value.partition(b"#")
    if hash_mark:
        uri.fragment = fragment
    value, question_mark, query = value.partition(b"?")
    if question_mark:
        uri.query = query
    return value


def _authority(uri, value, skip):
    """`//user@host:port/path` (or `/host/path`): False when the port is invalid."""
    rest = value[skip:]
    slash = rest.find(b"/")
    at = rest.rfind(b"@", 0, slash if slash >= 0 else len(rest))
    start = 0
    if at >= 0:
        uri.user_info = rest[:at]
        start = at + 1
    host, end = _host_span(rest, start)
    if host is None:
        if uri.scheme.lower() == b"file":
            uri.host, uri.path = b"localhost", rest[start:] or None
        return True
    uri.host = host
    if rest[end:end + 1] == b":":
        digits = _PORT.match(rest, end + 1).group(0)
        if not digits or int(digits) <= 0:
            return False
        uri.port = int(digits)
    path_start = rest.find(b"/", end)
    if path_start >= 0:
        uri.path = rest[path_start:]
    return True


def _local_part(local):
    """The tail of `local` that is a valid local part (dot-atom or quoted string), or b""."""
    if _QUOTED_LOCAL.search(local):
        return local[local.rfind(b'"', 0, -1):]
    start = len(local)
    while start > 0 and (local[start - 1] in _ATEXT or local[start - 1] == 0x2E):
        start -= 1
    tail = local[start:]
    double_dot = tail.rfind(b"..")
    if double_dot >= 0:
        tail = tail[double_dot + 2:]
    tail = tail.lstrip(b".")
    return b"" if tail.endswith(b".") else tail


def _mail_address(uri, value):
    """`local@domain`: the domain needs a dot; the scheme becomes mailto."""
    at = value.rfind(b"@")
    local = _local_part(value[:at])
    end = _domain_span(value, at + 1, 1)
    if not local or end < 0:
        return False
    uri.scheme = b"mailto"
    uri.user_info = local
    uri.host = value[at + 1:end]
    uri.scheme_info = uri.uri_decoded = local + b"@" + uri.host
    return True


def _implicit_host(uri, value):
    """No scheme: an IP literal (scheme ip), or a domain ending in a known TLD (http)."""
    literal = value[1:] if value[:1] == b"[" else value
    if _ipv4_length(literal) or _ipv6_length(literal):
        uri.scheme = b"ip"
        uri.host = literal.replace(b"]", b"", 1) if value[:1] == b"[" else literal
        uri.port = 0
        return True
    slash = value.find(b"/")
    host = value if slash < 0 else value[:slash]
    if _domain_span(value, 0, 1) != len(host) or not _has_known_tld(host):
        return False
    uri.scheme = b"http"
    uri.host = host
    if slash >= 0:
        uri.path = value[slash:]
    return True


def _value_keeping_plus(raw, has_scheme):
    """The decoded e-mail address without its query, `+` kept (intended, see above)."""
    plain = decode(raw, False).split(b"\0", 1)[0]
    if has_scheme:
        plain = plain[plain.find(b":") + 1:]
    return plain.partition(b"#")[0].partition(b"?")[0]


def parse(raw):
    """The fields of URI `raw` (a dict), or None: see the module text."""
    raw = raw.split(b"\0", 1)[0]
    if raw.endswith(b"."):          # end of a sentence, not of the URI
        raw = raw[:-1]
    if not raw:
        return None
    decoded = decode(raw).split(b"\0", 1)[0]
    uri = _Uri(raw, decoded)
    value = _find_scheme(uri, decoded, raw)
    scheme_port = _PORT_OF_SCHEME.get(uri.scheme.lower(), -1) if uri.scheme is not None else None
    rest = _split_fragment_and_query(uri, value if value is not None else decoded)
    if value is not None and (rest.startswith(b"//") or (rest.startswith(b"/") and scheme_port > 0)):
        if not _authority(uri, rest, 2 if rest.startswith(b"//") else 1):
            return None
    elif value is not None and rest.startswith(b"/"):
        uri.path = rest
        if uri.scheme.lower() == b"file":
            uri.host = b"localhost"
    elif (value is None or scheme_port == MAIL_PORT) and rest.rfind(b"@") > 0:
        if not _mail_address(uri, _value_keeping_plus(raw, value is not None)):
            return None
    elif value is None and not _implicit_host(uri, rest):
        return None
    return uri.result()


# -- tokens of message text (§4.3) ----------------------------------------------------------
_ATTRIBUTE_PREFIX = re.compile(rb"[A-Za-z0-9]+=")


def clean_token(token):
    """The token as uri.found parses it: `href=`-like prefix, one bracket or quote at each
    end and runs of `_` at both ends taken off."""
    prefix = _ATTRIBUTE_PREFIX.match(token)
    if prefix is not None:
        token = token[prefix.end():]
    if token[:1] in (b"(", b"'"):
        token = token[1:]
    if token[-1:] in (b")", b"'"):
        token = token[:-1]
    return token.strip(b"_")


def may_be_uri(token):
    """False for tokens parse() certainly rejects: a URI needs a `:`, an `@`, a `%` (which
    may decode to one of these) or a dot that is not the last byte."""
    return (b":" in token or b"@" in token or b"%" in token
            or b"." in token[:-1])
