"""IP address helpers behind Lua `net.*`, as the original's libsnert functions behaved
(shared/spec/helpers.md §6), with the deliberate differences listed below.

An address is 16 bytes in network order. As in the original, an IPv4 text becomes the
IPv4-*compatible* form ::a.b.c.d (not ::ffff:a.b.c.d); an address "is IPv4" when it is
::a.b.c.d with a != 0 (so 0.0.0.1 is ::1) or ::ffff:a.b.c.d.

Differences from the original, on purpose:
* parse_ip reads hex words strictly (1-4 hex digits; no strtol whitespace or 0x prefixes).
* reverse_ip of an address with a dotted IPv4 tail (::ffff:1.2.3.4) gives its real 32
  nibbles; the original garbled the tail into one word.
Everything here takes and returns bytes.
"""

ZERO = bytes(16)
LOOPBACK6 = bytes(15) + b"\x01"
MAPPED_PREFIX = bytes(10) + b"\xff\xff"

_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
_C_SPACE = frozenset(b" \t\n\v\f\r")
_PUNCT = frozenset(c for c in range(0x21, 0x7F) if not chr(c).isalnum())


# -- parsing --------------------------------------------------------------------------------
def parse_ip(text, start=0):
    """The address at text[start:] -> (16-byte address, end index), or None.

    Lenient like the original: an optional `[` and `IPv6:` tag (any case) lead, a closing
    `]` is consumed, and whatever follows the address is ignored (`10.1.2.3abc`)."""
    pos = start
    bracket = text[pos:pos + 1] == b"["
    if bracket:
        pos += 1
    if text[pos:pos + 5].lower() == b"ipv6:":
        pos += 5
    quad = _dotted_quad(text, pos)
    if quad is not None:
        address, pos = bytes(12) + quad[0], quad[1]
    else:
        words = _ipv6_words(text, pos)
        if words is None:
            return None
        address = b"".join(word.to_bytes(2, "big") for word in words[0])
        pos = words[1]
    if bracket and text[pos:pos + 1] == b"]":
        pos += 1
    return address, pos


def _digit_run(text, pos, allowed):
    end = pos
    while end < len(text) and text[end] in allowed:
        end += 1
    return end


def _dotted_quad(text, pos):
    """a.b.c.d at pos (1-3 decimal digits, each <= 255) -> (4 bytes, end) or None."""
    octets = []
    for index in range(4):
        if index:
            if text[pos:pos + 1] != b".":
                return None
            pos += 1
        end = _digit_run(text, pos, _DIGITS)
        if not 0 < end - pos <= 3 or int(text[pos:end]) > 255:
            return None
        octets.append(int(text[pos:end]))
        pos = end
    return bytes(octets), pos


def _ipv6_words(text, pos):
    """Hex words with at most one `::` and an optional dotted IPv4 tail -> (8 words, end).

    Without `::` it takes 8 words, or fewer words ending in an IPv4 tail, which are aligned
    right (`ffff:1.2.3.4` is ::ffff:1.2.3.4, as the original's find_ip found it)."""
    head, tail = [], None
    if text[pos:pos + 2] == b"::":
        tail = []
        pos += 2
    has_ipv4_tail = False
    while True:
        words = head if tail is None else tail
        total = len(head) + len(tail or ())
        if total <= 6:
            quad = _dotted_quad(text, pos)
            if quad is not None:
                octets, pos = quad
                words += [octets[0] << 8 | octets[1], octets[2] << 8 | octets[3]]
                has_ipv4_tail = True
                break
        end = _digit_run(text, pos, _HEX)
        if end == pos:
            break
        if end - pos > 4:
            return None
        words.append(int(text[pos:end], 16))
        pos = end
        if total + 1 == (8 if tail is None else 7):
            break
        if text[pos:pos + 2] == b"::":
            if tail is not None:  # a second `::` makes the whole literal invalid
                return None
            tail = []
            pos += 2
        elif text[pos:pos + 1] == b":" and text[pos + 1:pos + 2] and text[pos + 1] in _HEX:
            pos += 1
        else:
            break
    if tail is not None:
        return head + [0] * (8 - len(head) - len(tail)) + tail, pos
    if len(head) == 8:
        return head, pos
    if has_ipv4_tail:
        return [0] * (8 - len(head)) + head, pos
    return None


# -- classification -------------------------------------------------------------------------
def is_ipv4(address):
    """::a.b.c.d with a != 0 (IPv4-compatible) or ::ffff:a.b.c.d (IPv4-mapped)."""
    return (address[:12] == ZERO[:12] and address[12] != 0) or address[:12] == MAPPED_PREFIX


def _leading_zero_bytes(address):
    return len(address) - len(address.lstrip(b"\x00"))


# The original's classification bits at libsnert HEAD (include/net/network.h). The Lua
# table net.is_ip uses the 2011 numbering instead: see IS_IP below.
HEAD_FLAGS = {
    "BENCHMARK": 0x1, "LINK_LOCAL": 0x2, "LOCALHOST": 0x4, "LOOPBACK": 0x8, "MULTICAST": 0x10,
    "PRIVATE_A": 0x20, "PRIVATE_B": 0x40, "PRIVATE_C": 0x80, "CLASS_E": 0x100,
    "PROTOCOL": 0x200, "TEST_NET_1": 0x400, "THIS_HOST": 0x800, "THIS_NET": 0x1000,
    "V4_COMPATIBLE": 0x2000, "V4_MAPPED": 0x4000, "V6": 0x8000, "V6_RESERVED": 0x10000,
    "BROADCAST": 0x20000, "SIXTO4_ANYCAST": 0x40000, "TEST_NET_2": 0x80000,
    "TEST_NET_3": 0x100000, "SHARED": 0x200000,
}
_H = HEAD_FLAGS
_TEST_NETS = _H["TEST_NET_1"] | _H["TEST_NET_2"] | _H["TEST_NET_3"]

# (network, prefix length, flag) for the IPv4 part of an IPv4 address.
_IPV4_RANGES = [
    (0x00000000, 32, _H["THIS_HOST"]), (0x00000000, 8, _H["THIS_NET"]),
    (0x0A000000, 8, _H["PRIVATE_A"]), (0x64400000, 10, _H["SHARED"]),
    (0x7F000001, 32, _H["LOCALHOST"]), (0xA9FE0000, 16, _H["LINK_LOCAL"]),
    (0xAC100000, 12, _H["PRIVATE_B"]), (0xC0000000, 24, _H["PROTOCOL"]),
    (0xC0000200, 24, _H["TEST_NET_1"]), (0xC0586300, 24, _H["SIXTO4_ANYCAST"]),
    (0xC0A80000, 16, _H["PRIVATE_C"]), (0xC6120000, 15, _H["BENCHMARK"]),
    (0xC6336400, 24, _H["TEST_NET_2"]), (0xCB007100, 24, _H["TEST_NET_3"]),
    (0xE0000000, 4, _H["MULTICAST"]), (0xF0000000, 4, _H["CLASS_E"]),
    (0xFFFFFFFF, 32, _H["BROADCAST"]),
]


def _ipv4_flags(value):
    flags = 0
    for network, length, flag in _IPV4_RANGES:
        if value >> (32 - length) == network >> (32 - length):
            flags |= flag
    if value >> 24 == 127 and value != 0x7F000001:
        flags |= _H["LOOPBACK"]
    return flags


def reserved_flags(address):
    """The HEAD_FLAGS bits that describe `address`, in the original's order of tests:
    unspecified, >= 13 leading zero bytes, ::1, then either the IPv4 table (IPv4 addresses
    only) or the IPv6 tests."""
    flags = 0
    if address == ZERO:
        flags |= _H["THIS_HOST"]
    if _leading_zero_bytes(address) >= 13:
        flags |= _H["THIS_NET"]
    if address == LOOPBACK6:
        flags |= _H["LOCALHOST"]
    if is_ipv4(address):
        if address[:12] == ZERO[:12]:
            flags |= _H["V4_COMPATIBLE"]
        return flags | _H["V4_MAPPED"] | _ipv4_flags(int.from_bytes(address[12:], "big"))
    flags |= _H["V6"]
    if address[:2] == b"\x00\x00":
        flags |= _H["V6_RESERVED"]
    if address[:4] == b"\x20\x01\x0d\xb8":  # documentation prefix: every TEST_NET bit at HEAD
        flags |= _H["BENCHMARK"] | _TEST_NETS
    if address[0] == 0xFE and address[1] & 0xC0 == 0x80:
        flags |= _H["LINK_LOCAL"]
    if address[0] == 0xFF:
        flags |= _H["MULTICAST"]
    return flags


# Lua net.is_ip: the 2011 numbering the API text documents (original-behaviour.md §7.12),
# composites included, then the HEAD-only tests as extras on bits the 2011 layout left free.
IS_IP = {
    "BENCHMARK": 0x1, "LINK_LOCAL": 0x2, "LOCALHOST": 0x4, "LOOPBACK": 0x8, "MULTICAST": 0x10,
    "PRIVATE_A": 0x20, "PRIVATE_B": 0x40, "PRIVATE_C": 0x80, "RESERVED": 0x100,
    "SITE_LOCAL": 0x200, "TEST_NET": 0x400, "THIS_HOST": 0x800, "THIS_NET": 0x1000,
    "V4_COMPATIBLE": 0x2000, "V4_MAPPED": 0x4000, "V6": 0x8000,
    "V4": 0x6000, "ANY": 0x1FFF, "TEST": 0x401, "LOCAL": 0x80C, "LAN": 0x2E2,
    "RESTICTED": 0x171F,   # sic: the only spelling the original had
    "RESTRICTED": 0x171F,  # the correct spelling, as an alias
    "V6_RESERVED": 0x10000, "BROADCAST": 0x20000, "SIXTO4_ANYCAST": 0x40000,
    "SHARED": 0x200000, "CLASS_E": 0x400000, "PROTOCOL": 0x800000,
}
_SAME_MEANING = ["LINK_LOCAL", "LOCALHOST", "LOOPBACK", "MULTICAST", "PRIVATE_A", "PRIVATE_B",
                 "PRIVATE_C", "THIS_HOST", "THIS_NET", "V4_COMPATIBLE", "V4_MAPPED", "V6",
                 "V6_RESERVED", "BROADCAST", "SIXTO4_ANYCAST", "SHARED", "CLASS_E", "PROTOCOL"]


def is_ip_flags(address):
    """The net.is_ip (IS_IP) bits of `address`.

    RESERVED: IPv6 outside 2000::/3 (as in 2011), and also IPv4 240/4 (class E and the
    broadcast address, which HEAD's RESTRICTED had). SITE_LOCAL: fec0::/10. TEST_NET: every
    documentation network (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32).
    BENCHMARK: 198.18/15 only. The others mean what they meant in the original."""
    head = reserved_flags(address)
    flags = 0
    for name in _SAME_MEANING:
        if head & _H[name]:
            flags |= IS_IP[name]
    ipv4 = is_ipv4(address)
    if ipv4 and head & _H["BENCHMARK"]:
        flags |= IS_IP["BENCHMARK"]
    if head & _TEST_NETS:
        flags |= IS_IP["TEST_NET"]
    if head & _H["CLASS_E"] or (not ipv4 and address[0] & 0xE0 != 0x20):
        flags |= IS_IP["RESERVED"]
    if not ipv4 and address[0] == 0xFE and address[1] & 0xC0 == 0xC0:
        flags |= IS_IP["SITE_LOCAL"]
    return flags


def is_ip_reserved(text, bits):
    """net.is_ip_reserved: does the address match any of the IS_IP `bits`? False when the
    text is not an address."""
    parsed = parse_ip(text)
    return parsed is not None and bool(is_ip_flags(parsed[0]) & bits)


# -- formatting -----------------------------------------------------------------------------
def format_address(address, compact=0):
    """The original's formatIP: 8 hex words (`%x`), or with compact=2 `%04x` words, or with
    any other non-zero compact the *first* run of zero words shortened to `::` (a run reaches
    the last word only when it starts there: `fe80::0`, `1:2:3:4:5:6:7::`). IPv4 addresses
    keep a dotted tail (`::ffff:1.2.3.4`)."""
    pattern = "%04x" if compact == 2 else "%x"
    words = [int.from_bytes(address[i:i + 2], "big") for i in range(0, 16, 2)]
    parts = [(pattern % word, word == 0) for word in words]
    if is_ipv4(address):
        parts[6:] = [(".".join(str(octet) for octet in address[12:]), False)]
    if compact in (0, 2):
        return ":".join(text for text, _ in parts).encode("ascii")
    return _compress_first_zero_run(parts).encode("ascii")


def _compress_first_zero_run(parts):
    zeros = [index for index, (_, zero) in enumerate(parts) if zero]
    if not zeros:
        return ":".join(text for text, _ in parts)
    first = last = zeros[0]
    while last + 1 < len(parts) - 1 and parts[last + 1][1]:
        last += 1
    before = ":".join(text for text, _ in parts[:first])
    after = ":".join(text for text, _ in parts[last + 1:])
    return before + "::" + after


def format_ip(text, compact=0):
    """net.format_ip: "" if `text` is not an address; an IPv4 address as a plain dotted quad
    whatever `compact` (the intended behaviour; the original printed 0.0.0.0); else
    format_address."""
    parsed = parse_ip(text)
    if parsed is None:
        return b""
    address = parsed[0]
    if is_ipv4(address):
        return ".".join(str(octet) for octet in address[12:]).encode("ascii")
    return format_address(address, compact)


# -- reverse --------------------------------------------------------------------------------
def reverse_ip(text, arpa=False):
    """net.reverse_ip: text without `:` has its dot-separated parts reversed (any text, so
    `www.example.com` -> `com.example.www`), plus `.in-addr.arpa.` with arpa; an IPv6
    address becomes its nibbles, least significant first, plus `.ip6.arpa.` with arpa.
    A leading `IPv6:` and one trailing dot are dropped."""
    if text[:5].lower() == b"ipv6:":
        text = text[5:]
    if text.endswith(b"."):
        text = text[:-1]
    if b":" not in text:
        reversed_text = b".".join(reversed(text.split(b".")))
        return reversed_text + b".in-addr.arpa." if arpa else reversed_text
    parsed = parse_ip(text)
    if parsed is not None:
        words = [int.from_bytes(parsed[0][i:i + 2], "big") for i in range(0, 16, 2)]
    else:  # not an address (`1:2`): each word as given, as the original did
        words = [_hex_prefix(word) for word in text.split(b":")]
    nibbles = ".".join(".".join(reversed("%04x" % word)) for word in reversed(words))
    return nibbles.encode("ascii") + (b".ip6.arpa." if arpa else b"")


def _hex_prefix(word):
    end = _digit_run(word, 0, _HEX)
    return int(word[:end], 16) & 0xFFFF if end else 0


# -- contains -------------------------------------------------------------------------------
def contains_ip(cidr=b"::0/0", ip=b"::0"):
    """net.contains_ip: is `ip` inside `network/prefix`? A prefix up to 32 on a network
    written without `:` counts as IPv4 (96 added). Like the original, the IPv4 and ::ffff:
    forms never match each other, and a missing `/` or a prefix over 128 is False."""
    slash = cidr.find(b"/")
    if slash < 0:
        return False
    prefix = _strtol(cidr, slash + 1)[0]
    network, address = parse_ip(cidr[:slash]), parse_ip(ip)
    if network is None or address is None:
        return False
    if 0 <= prefix <= 32 and b":" not in cidr[:slash]:
        prefix += 96
    if not 0 <= prefix <= 128:
        return False
    shift = 128 - prefix
    return int.from_bytes(network[0], "big") >> shift == int.from_bytes(address[0], "big") >> shift


def _strtol(text, pos):
    """C strtol in base 10 at pos -> (value, end); end is pos when there are no digits."""
    start = pos
    while pos < len(text) and text[pos] in _C_SPACE:
        pos += 1
    sign = 1
    if text[pos:pos + 1] in (b"+", b"-"):
        sign = -1 if text[pos:pos + 1] == b"-" else 1
        pos += 1
    end = _digit_run(text, pos, _DIGITS)
    if end == pos:
        return 0, start
    return sign * int(text[pos:end]), end


# -- find -----------------------------------------------------------------------------------
def find_ip(text):
    """net.find_ip: (0-based offset, span) of the left-most IPv4 or IPv6 literal in `text`
    (IPv4 on a tie), or None. The original's scanner, quirks included (helpers.md §6.5)."""
    ipv4 = _find_ipv4(text)
    ipv6 = _find_ipv6(text, len(text) if ipv4 is None else ipv4[0])
    return ipv6 if ipv6 is not None else ipv4


def _find_ipv4(text):
    """At each `.`, back up over at most 3 digits and read a dotted quad there."""
    dot = text.find(b".")
    while dot >= 0:
        start = dot
        while start > 0 and dot - start < 3 and text[start - 1] in _DIGITS:
            start -= 1
        if start < dot:
            span = _quad_span(text, start)
            if span is not None:
                return start, span
        dot = text.find(b".", dot + 1)
    return None


def _quad_span(text, start):
    """The original's quad reader: four strtol octets (whitespace and signs allowed, an
    empty octet is 0) joined by dots; rejected when a dot follows, where the look-ahead that
    checks for it also decides the span (so `1.2.3.4 5` spans 9 bytes)."""
    pos = start
    for index in range(4):
        if index:
            if text[pos:pos + 1] != b".":
                return None
            pos += 1
        value, pos = _strtol(text, pos)
        if not 0 <= value <= 255:
            return None
    end = _strtol(text, pos)[1]
    if text[end:end + 1] == b".":
        return None
    return end - start


def _find_ipv6(text, before):
    """At each `:`, back up over 1-4 hex digits and parse an IPv6 address there; only
    offsets below `before` matter. A literal starting with `::` is never found."""
    colon = text.find(b":")
    while 0 <= colon:
        start = colon
        while start > 0 and colon - start < 4 and text[start - 1] in _HEX:
            start -= 1
        if start >= before:
            return None
        if start < colon:
            parsed = _ipv6_words(text, start)
            if parsed is not None:
                return start, parsed[1] - start
        colon = text.find(b":", colon + 1)
    return None


# -- IPv4 in a host name ----------------------------------------------------------------------
def ipv4_in_name(ip, name):
    """net.is_ipv4_in_name: the number of the first of the original's tests that finds the
    last 4 bytes of address `ip` in host `name` (case-sensitive; hex is lower case), 0 if
    none, None when `ip` is not an address. Codes: 1 hex, 2 decimal, 3 octal (whole value,
    16-bit halves over 255, byte pairs), 10-12 the same pairs with a separator, 5 and 6 the
    name starts with the last byte (hex, decimal), 7 and 8 `-last.`, 9 third then last byte."""
    parsed = parse_ip(ip)
    if parsed is None:
        return None
    a, b, c, d = parsed[0][12:]
    value = int.from_bytes(parsed[0][12:], "big")
    halves = [half for half in (value >> 16, value & 0xFFFF) if half > 255]
    pairs = [(a, b), (b, c), (c, d), (d, c), (c, b), (b, a)]
    tests = [
        (1, ["%08x" % value] + ["%x" % h for h in halves] + ["%02x%02x" % p for p in pairs]),
        (2, ["%d" % value] + ["%d" % h for h in halves] + ["%03d%03d" % p for p in pairs]),
        (3, ["%o" % value] + ["%o" % h for h in halves] + ["%03o%03o" % p for p in pairs]),
        (10, ["%02x-%02x" % p for p in pairs]),
        (11, ["%d-%d" % p for p in pairs]),
        (12, ["%03o-%03o" % p for p in pairs]),
    ]
    for code, patterns in tests:
        if any(_find_pattern(name, pattern.encode("ascii")) >= 0 for pattern in patterns):
            return code
    if len(name) >= 2 and name[0] in _HEX and name[1] in _HEX and name[2:3] not in _HEX_BYTES \
            and int(name[:2], 16) == d:
        return 5
    if name[:1].isdigit() and int(name[:_digit_run(name[:3], 0, _DIGITS)]) == d:
        return 6
    if _find_pattern(name, b"-%03d." % d) >= 0:
        return 7
    if _find_pattern(name, b"-%d." % d) >= 0:
        return 8
    third = _find_pattern(name, b"%d" % c)
    if third >= 0 and _find_pattern(name, b"%d" % d, third + 1) >= 0:
        return 9
    return 0


_HEX_BYTES = {bytes([c]) for c in _HEX}


def _find_pattern(name, pattern, start=0):
    """Offset of the first match of `pattern` in name[start:], or -1. The first byte must
    match exactly; after it, punctuation in the name is skipped where the pattern wants a
    hex digit, and punctuation in the pattern matches any punctuation."""
    offset = name.find(pattern[:1], start)
    while offset >= 0:
        if _matches_at(name, offset + 1, pattern):
            return offset
        offset = name.find(pattern[:1], offset + 1)
    return -1


def _matches_at(name, pos, pattern):
    for wanted in pattern[1:]:
        while pos < len(name) and name[pos] in _PUNCT and wanted in _HEX:
            pos += 1
        if pos >= len(name):
            return False
        have = name[pos]
        if (have not in _PUNCT) if wanted in _PUNCT else (have != wanted):
            return False
        pos += 1
    return True
