"""Plain-Python statement of text.find, text.natcmp and text.split, following
shared/spec/helpers.md §1 and §7 step by step (the original's recursion and scanning order
are kept on purpose, so that this file reads like the specification).

Differences from the original that smtpe makes on purpose, shared with the Cython code:
* find is binary-safe: a NUL byte is an ordinary byte (the original stopped at it, so a NUL
  early in a message hid everything after it from a content rule);
* a '-' just before the ']' closing a class is a literal hyphen (the original ran past the
  class and crashed).
natcmp and split keep the original's C-string view: the text ends at the first NUL.
"""

SPACE = frozenset(b" \t\n\v\f\r")
DIGITS = frozenset(b"0123456789")
BACKSLASH = 0x5C
QUOTES = (0x22, 0x27)
ESCAPES = {ord("a"): 0x07, ord("b"): 0x08, ord("e"): 0x1B, ord("f"): 0x0C, ord("n"): 0x0A,
           ord("r"): 0x0D, ord("s"): 0x20, ord("t"): 0x09, ord("v"): 0x0B}


def lower(byte):
    return byte + 32 if 0x41 <= byte <= 0x5A else byte


def upper(byte):
    return byte - 32 if 0x61 <= byte <= 0x7A else byte


def signed(byte):
    """The value of a C `char` on the platforms the original ran on."""
    return byte - 256 if byte >= 0x80 else byte


def c_string(data):
    """What a C function sees of a Lua string: the bytes before the first NUL."""
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


# -- text.find ----------------------------------------------------------------------------
def find(haystack, pattern, caseless=False):
    """C result of TextFind: offset of the match (see helpers.md §1) or -1."""
    if haystack is None or pattern is None:
        return -1
    return _find_from(haystack, 0, pattern, 0, caseless)


def _find_from(hay, hay_at, pattern, pat_at, caseless):
    start = hay_at
    offset = -1
    while pat_at < len(pattern):
        element = pattern[pat_at]
        if element == ord("*"):
            while pat_at < len(pattern) and pattern[pat_at] == ord("*"):
                pat_at += 1
            if pat_at == len(pattern):
                return offset if offset >= 0 else hay_at - start
            # Leftmost position where the rest matches to the end (never the very end).
            while hay_at < len(hay):
                if _find_from(hay, hay_at, pattern, pat_at, caseless) == 0:
                    return offset if offset >= 0 else hay_at - start
                hay_at += 1
            return -1
        if hay_at >= len(hay):
            return -1
        byte = hay[hay_at]
        if element == BACKSLASH:
            pat_at += 1
            if pat_at >= len(pattern) or byte != pattern[pat_at]:
                return -1
        elif element == ord("["):
            pat_at = _class_end_if_member(byte, pattern, pat_at, caseless)
            if pat_at < 0:
                return -1
        elif element == ord("?"):
            pass
        elif element == ord(" ") and byte in SPACE:
            pass
        elif (lower(byte) != lower(element)) if caseless else (byte != element):
            return -1
        if offset < 0:
            offset = hay_at - start
        hay_at += 1
        pat_at += 1
    return 0 if hay_at == len(hay) else -1


def _class_end_if_member(byte, pattern, open_at, caseless):
    """Index of the class's closing ']' when `byte` belongs to the class, else -1."""
    members = open_at + 1
    negate = members < len(pattern) and pattern[members] in b"^!"
    if negate:
        members += 1
    close_at = pattern.find(b"]", open_at + 1)
    while close_at == members:
        close_at = pattern.find(b"]", close_at + 1)
    if close_at < 0:
        return -1
    member = _class_has(byte, pattern, members, close_at, caseless)
    return close_at if member != negate else -1


def _class_has(byte, pattern, at, close_at, caseless):
    def same(a, b):
        return lower(a) == lower(b) if caseless else a == b

    if pattern[at] == ord("]"):          # "[]...]": a leading ']' is a member
        if byte == ord("]"):
            return True
        at += 1
    if pattern[at] == ord("-"):          # "[-...]", "[]-...]": a leading '-' is a member
        if byte == ord("-"):
            return True
        at += 1
    while at != close_at:
        member = pattern[at]
        if member == BACKSLASH and byte == pattern[at + 1]:
            # "\c" matched c; when c is the closing ']' the original counts it as a miss.
            return at + 1 != close_at
        if member == ord("-") and at + 1 != close_at:
            low, high = pattern[at - 1], pattern[at + 1]
            value = byte
            if caseless:
                low, high, value = lower(low), lower(high), lower(value)
            if signed(low) < signed(value) <= signed(high):
                return True
            at += 2
            continue
        if same(byte, member):
            return True
        at += 1
    return False


# -- text.natcmp --------------------------------------------------------------------------
def natcmp(a, b, caseless=False):
    """-1, 0 or +1 in natural order (Martin Pool's strnatcmp); nil sorts after strings."""
    if a is None or b is None:
        return (a is None) - (b is None)
    a = c_string(a) + b"\0"
    b = c_string(b) + b"\0"
    ai = bi = 0
    while True:
        while a[ai] in SPACE:
            ai += 1
        while b[bi] in SPACE:
            bi += 1
        ca, cb = a[ai], b[bi]
        if ca in DIGITS and cb in DIGITS:
            if ca == ord("0") or cb == ord("0"):
                result = _compare_fraction(a, ai, b, bi)
            else:
                result = _compare_integer(a, ai, b, bi)
            if result:
                return result
        if ca == 0 and cb == 0:
            return 0
        if caseless:
            ca, cb = upper(ca), upper(cb)
        if ca != cb:
            return -1 if ca < cb else 1
        ai += 1
        bi += 1


def _compare_integer(a, ai, b, bi):
    """Longer digit run wins; at equal length the first differing digit decides."""
    bias = 0
    while True:
        da, db = a[ai] in DIGITS, b[bi] in DIGITS
        if not da and not db:
            return bias
        if not da:
            return -1
        if not db:
            return 1
        if not bias and a[ai] != b[bi]:
            bias = -1 if a[ai] < b[bi] else 1
        ai += 1
        bi += 1


def _compare_fraction(a, ai, b, bi):
    """Left-aligned digits: the first difference wins; the shorter run is less."""
    while True:
        da, db = a[ai] in DIGITS, b[bi] in DIGITS
        if not da and not db:
            return 0
        if not da:
            return -1
        if not db:
            return 1
        if a[ai] != b[bi]:
            return -1 if a[ai] < b[bi] else 1
        ai += 1
        bi += 1


# -- text.split ---------------------------------------------------------------------------
def split(text, delims=None):
    """List of tokens (TextSplit(text, delims, 0) of the original), or None for nil."""
    if text is None:
        return None
    text = c_string(text)
    delims = b" \t" if delims is None else c_string(delims)
    tokens = []
    at = 0
    while at is not None:
        token, at = _next_token(text, at, delims)
        if token is None:
            break
        tokens.append(token)
    return tokens


def _next_token(text, at, delims):
    while at < len(text) and text[at] in delims:
        at += 1
    if at >= len(text):
        return None, None
    # Pass 1 finds the end of the token.
    quote, escape, end = 0, False, at
    while end < len(text):
        byte = text[end]
        end += 1
        if escape:
            escape = False
        elif byte in QUOTES:
            if not quote:
                quote = byte
            elif byte == quote:
                quote = 0
        elif byte == BACKSLASH:
            escape = True
        elif not quote and byte in delims:
            end -= 1
            break
    # Pass 2 copies it; quote and escape state left over from pass 1 carry in (the
    # original's quirk: an unterminated quote or a trailing backslash act at the start).
    token = bytearray()
    while at < end:
        byte = text[at]
        if escape:
            token.append(ESCAPES.get(byte, byte))
            escape = False
        elif byte in QUOTES and (not quote or byte == quote):
            quote = 0 if quote else byte
        elif byte == BACKSLASH:
            escape = True
        elif not quote and byte in delims:
            break
        else:
            token.append(byte)
        at += 1
    return bytes(token), (at + 1 if at < len(text) else None)
