# cython: language_level=3
"""The `text` helpers of the Lua API: the glob matcher behind text.find, natural-order
comparison (text.natcmp) and token splitting (text.split). shared/spec/helpers.md §1 and §7
describe the original's algorithms; tests/reference/textfind_ref.py states them in plain
Python and the property tests hold these fast versions to it.

find(haystack, pattern, caseless) -> the original's C result: offset or -1.
  The pattern is compiled into single-byte elements (exact byte, folded byte, any byte,
  space byte, class table) separated by stars, then matched with the classic glob
  algorithm that remembers only the last star: O(len(haystack) * len(pattern)) at worst,
  where the original's recursion was exponential in the number of stars. For a pattern
  that starts with '*' the result is the smallest offset from which the rest matches to
  the end, which is what the original's leftmost search returns. Binary-safe: NUL is an
  ordinary byte (the original stopped at it). A '-' just before the closing ']' is a
  literal hyphen (the original ran past the class and crashed).

natcmp(a, b, caseless) -> -1, 0, +1 and split(text, delims) -> list keep the original's
C-string view: the text ends at the first NUL.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memchr, memset

ctypedef unsigned char uchar

cdef enum:
    STAR = 0      # any run of bytes
    BYTE = 1      # this byte exactly
    FOLDED = 2    # this (lower-case) byte, caseless
    ANY = 3       # '?'
    SPACE = 4     # ' ': one of SP HT LF VT FF CR
    CLASS = 5     # '[...]': a 256-entry membership table

cdef struct Element:
    uchar kind
    uchar byte
    const uchar *members

cdef uchar LOWER[256]
cdef uchar UPPER[256]
cdef uchar IS_SPACE[256]
cdef uchar IS_DIGIT[256]
cdef uchar ESCAPED[256]        # text.split: the byte a backslash escape stands for


cdef void _init_tables():
    cdef int byte
    for byte in range(256):
        LOWER[byte] = byte + 32 if 0x41 <= byte <= 0x5A else byte
        UPPER[byte] = byte - 32 if 0x61 <= byte <= 0x7A else byte
        IS_SPACE[byte] = byte == 0x20 or 0x09 <= byte <= 0x0D
        IS_DIGIT[byte] = 0x30 <= byte <= 0x39
        ESCAPED[byte] = byte
    ESCAPED[ord("a")] = 0x07
    ESCAPED[ord("b")] = 0x08
    ESCAPED[ord("e")] = 0x1B
    ESCAPED[ord("f")] = 0x0C
    ESCAPED[ord("n")] = 0x0A
    ESCAPED[ord("r")] = 0x0D
    ESCAPED[ord("s")] = 0x20
    ESCAPED[ord("t")] = 0x09
    ESCAPED[ord("v")] = 0x0B


_init_tables()


# -- text.find: character classes ---------------------------------------------------------
cdef inline int _signed(uchar byte) noexcept:
    """The value of a C `char` on the platforms the original ran on."""
    return <signed char> byte


cdef Py_ssize_t _class_close(const uchar *pattern, Py_ssize_t length, Py_ssize_t open_at,
                             Py_ssize_t members) noexcept:
    """Index of the ']' closing the class, -1 if none: the first ']' after the '[' that is
    not the class's first member."""
    cdef Py_ssize_t at = open_at + 1
    cdef const uchar *found
    while at < length:
        found = <const uchar *> memchr(pattern + at, ord("]"), length - at)
        if found == NULL:
            return -1
        at = found - pattern
        if at != members:
            return at
        at += 1
    return -1


cdef inline void _decide(uchar *state, uchar byte, bint member) noexcept:
    """The first member that decides a byte wins, as in the original's left-to-right scan."""
    if state[byte] == 0:
        state[byte] = 1 if member else 2


cdef void _decide_plain(uchar *state, uchar byte, bint caseless) noexcept:
    _decide(state, byte, True)
    if caseless:
        _decide(state, LOWER[byte], True)
        _decide(state, UPPER[byte], True)


cdef void _decide_range(uchar *state, uchar low, uchar high, bint caseless) noexcept:
    """Bytes with low < byte <= high, compared as signed C chars, folded when caseless."""
    cdef int byte, value
    if caseless:
        low, high = LOWER[low], LOWER[high]
    for byte in range(256):
        value = _signed(LOWER[byte] if caseless else byte)
        if _signed(low) < value <= _signed(high):
            _decide(state, byte, True)


cdef void _fill_class(const uchar *pattern, Py_ssize_t at, Py_ssize_t close_at,
                      bint negate, bint caseless, uchar *table) noexcept:
    """table[byte] = 1 when byte matches the class whose members start at `at`."""
    cdef uchar state[256]          # 0 undecided, 1 member, 2 ruled out
    cdef int byte
    memset(state, 0, 256)
    if pattern[at] == ord("]"):    # "[]...]": a leading ']' is a member
        _decide(state, ord("]"), True)
        at += 1
    if pattern[at] == ord("-"):    # "[-...]", "[]-...]": a leading '-' is a member
        _decide(state, ord("-"), True)
        at += 1
    while at != close_at:
        if pattern[at] == ord("\\"):
            # "\c" matches c exactly; the original counts "\]" at the end as a miss. The
            # backslash is a member too, and c is then scanned as a member of its own.
            _decide(state, pattern[at + 1], at + 1 != close_at)
            _decide(state, ord("\\"), True)
            at += 1
        elif pattern[at] == ord("-") and at + 1 != close_at:
            _decide_range(state, pattern[at - 1], pattern[at + 1], caseless)
            at += 2
        else:
            _decide_plain(state, pattern[at], caseless)
            at += 1
    for byte in range(256):
        table[byte] = (state[byte] == 1) != negate


# -- text.find: compiling and matching ----------------------------------------------------
cdef Py_ssize_t _compile(const uchar *pattern, Py_ssize_t length, bint caseless,
                         Element *elements, uchar *tables) noexcept:
    """Fill `elements`; return their count, or -1 when the pattern can never match (an
    unterminated class or a trailing backslash)."""
    cdef Py_ssize_t at = 0, count = 0, members, close_at
    cdef uchar byte
    cdef bint negate
    while at < length:
        byte = pattern[at]
        if byte == ord("*"):
            while at < length and pattern[at] == ord("*"):
                at += 1
            elements[count].kind = STAR
            count += 1
            continue
        if byte == ord("\\"):
            if at + 1 == length:
                return -1
            elements[count].kind = BYTE
            elements[count].byte = pattern[at + 1]
            at += 2
        elif byte == ord("["):
            members = at + 1
            negate = members < length and (pattern[members] == ord("^") or pattern[members] == ord("!"))
            if negate:
                members += 1
            close_at = _class_close(pattern, length, at, members)
            if close_at < 0:
                return -1
            _fill_class(pattern, members, close_at, negate, caseless, tables)
            elements[count].kind = CLASS
            elements[count].members = tables
            tables += 256
            at = close_at + 1
        elif byte == ord("?"):
            elements[count].kind = ANY
            at += 1
        elif byte == ord(" "):
            elements[count].kind = SPACE
            at += 1
        else:
            elements[count].kind = FOLDED if caseless else BYTE
            elements[count].byte = LOWER[byte] if caseless else byte
            at += 1
        count += 1
    return count


cdef inline bint _element_matches(const Element *element, uchar byte) noexcept:
    cdef uchar kind = element.kind
    if kind == BYTE:
        return byte == element.byte
    if kind == FOLDED:
        return LOWER[byte] == element.byte
    if kind == ANY:
        return True
    if kind == SPACE:
        return IS_SPACE[byte]
    return element.members[byte]


cdef Py_ssize_t _match(const uchar *hay, Py_ssize_t size, const Element *elements,
                       Py_ssize_t count) noexcept:
    """Anchored glob match. Returns -1, or the offset where the part after a leading star
    starts (0 when the pattern does not start with a star).

    On a mismatch only the last star seen is given one more byte: an earlier star never
    needs to grow once a later one is reached, because the later star absorbs any slack.
    For the leading star this tries offsets 0, 1, 2, ... in turn, so the offset found is
    the smallest one from which the rest of the pattern matches."""
    cdef Py_ssize_t at = 0, element = 0
    cdef Py_ssize_t star_element = -1, star_at = 0, first = 0
    cdef bint leading_star = count > 0 and elements[0].kind == STAR
    while True:
        if element < count and elements[element].kind == STAR:
            element += 1
            if element == count:
                return first
            star_element, star_at = element, at
            continue
        if element == count:
            if at == size:
                return first
        elif at < size and _element_matches(&elements[element], hay[at]):
            at += 1
            element += 1
            continue
        if star_element < 0 or star_at >= size:
            return -1
        star_at += 1
        at, element = star_at, star_element
        if leading_star and star_element == 1:
            first = star_at


def find(bytes haystack not None, bytes pattern not None, bint caseless=False):
    """Offset of the glob match of `pattern` over all of `haystack`, or -1 (see above)."""
    cdef const uchar *pat = <const uchar *> (<char *> pattern)
    cdef Py_ssize_t length = len(pattern), classes = 0, at, count
    for at in range(length):
        classes += pat[at] == ord("[")
    cdef Element *elements = <Element *> PyMem_Malloc((length + 1) * sizeof(Element) + classes * 256)
    if elements == NULL:
        raise MemoryError()
    try:
        count = _compile(pat, length, caseless, elements, <uchar *> (elements + length + 1))
        if count < 0:
            return -1
        return _match(<const uchar *> (<char *> haystack), len(haystack), elements, count)
    finally:
        PyMem_Free(elements)


# -- text.natcmp ----------------------------------------------------------------------------
cdef int _compare_integer(const uchar *a, const uchar *b) noexcept:
    """Longer digit run wins; at equal length the first differing digit decides."""
    cdef int bias = 0
    while True:
        if not IS_DIGIT[a[0]] and not IS_DIGIT[b[0]]:
            return bias
        if not IS_DIGIT[a[0]]:
            return -1
        if not IS_DIGIT[b[0]]:
            return 1
        if bias == 0 and a[0] != b[0]:
            bias = -1 if a[0] < b[0] else 1
        a += 1
        b += 1


cdef int _compare_fraction(const uchar *a, const uchar *b) noexcept:
    """Left-aligned digits: the first difference wins; the shorter run is less."""
    while True:
        if not IS_DIGIT[a[0]] and not IS_DIGIT[b[0]]:
            return 0
        if not IS_DIGIT[a[0]]:
            return -1
        if not IS_DIGIT[b[0]]:
            return 1
        if a[0] != b[0]:
            return -1 if a[0] < b[0] else 1
        a += 1
        b += 1


def natcmp(bytes first not None, bytes second not None, bint caseless=False):
    """-1, 0 or +1: Martin Pool's strnatcmp order (white space ignored, digit runs compared
    as numbers, or left-aligned when one starts with 0)."""
    # A bytes object always ends in a NUL: the C-string loop below stops there.
    cdef const uchar *a = <const uchar *> (<char *> first)
    cdef const uchar *b = <const uchar *> (<char *> second)
    cdef uchar ca, cb
    cdef int result
    while True:
        while IS_SPACE[a[0]]:
            a += 1
        while IS_SPACE[b[0]]:
            b += 1
        ca, cb = a[0], b[0]
        if IS_DIGIT[ca] and IS_DIGIT[cb]:
            if ca == ord("0") or cb == ord("0"):
                result = _compare_fraction(a, b)
            else:
                result = _compare_integer(a, b)
            if result != 0:
                return result
        if ca == 0 and cb == 0:
            return 0
        if caseless:
            ca, cb = UPPER[ca], UPPER[cb]
        if ca != cb:
            return -1 if ca < cb else 1
        a += 1
        b += 1


# -- text.split -----------------------------------------------------------------------------
cdef struct TokenState:
    uchar quote      # the open quote character, 0 outside quotes
    bint escape      # the previous byte was a backslash


cdef inline bint _is_quote(uchar byte) noexcept:
    return byte == ord('"') or byte == ord("'")


cdef const uchar *_token_end(const uchar *text, const uchar *is_delim, TokenState *state) noexcept:
    """Pass 1: the end of the token that starts at `text` (a delimiter or the NUL)."""
    while text[0] != 0:
        if state.escape:
            state.escape = False
        elif _is_quote(text[0]):
            if state.quote == 0:
                state.quote = text[0]
            elif text[0] == state.quote:
                state.quote = 0
        elif text[0] == ord("\\"):
            state.escape = True
        elif state.quote == 0 and is_delim[text[0]]:
            break
        text += 1
    return text


cdef const uchar *_copy_token(const uchar *text, const uchar *end, const uchar *is_delim,
                              TokenState *state, uchar *token, Py_ssize_t *length) noexcept:
    """Pass 2: copy the token without quotes and backslashes into `token`, setting its
    `length`. The state left by pass 1 carries in, as in the original: an unterminated
    quote makes the first quote a closing one (so delimiters inside split again) and a
    trailing backslash escapes the first byte. Returns where the copy stopped."""
    cdef Py_ssize_t size = 0
    while text < end:
        if state.escape:
            token[size] = ESCAPED[text[0]]
            size += 1
            state.escape = False
        elif _is_quote(text[0]) and (state.quote == 0 or text[0] == state.quote):
            state.quote = text[0] if state.quote == 0 else 0
        elif text[0] == ord("\\"):
            state.escape = True
        elif state.quote == 0 and is_delim[text[0]]:
            break
        else:
            token[size] = text[0]
            size += 1
        text += 1
    length[0] = size
    return text


def split(bytes text not None, bytes delims not None):
    """Tokens of `text` separated by runs of bytes from `delims` (TextSplit of the
    original): quotes group, backslash escapes apply inside and outside quotes."""
    cdef uchar is_delim[256]
    cdef const uchar *at = <const uchar *> (<char *> text)
    cdef const uchar *delim = <const uchar *> (<char *> delims)
    cdef const uchar *end
    cdef TokenState state
    cdef Py_ssize_t length
    cdef uchar *token = <uchar *> PyMem_Malloc(len(text) + 1)   # a token is never longer
    if token == NULL:
        raise MemoryError()
    memset(is_delim, 0, 256)
    while delim[0] != 0:
        is_delim[delim[0]] = 1
        delim += 1
    tokens = []
    try:
        while True:
            while at[0] != 0 and is_delim[at[0]]:
                at += 1
            if at[0] == 0:
                return tokens
            state.quote, state.escape = 0, False
            end = _token_end(at, is_delim, &state)
            at = _copy_token(at, end, is_delim, &state, token, &length)
            tokens.append(PyBytes_FromStringAndSize(<char *> token, length))
            if at[0] == 0:
                return tokens
            at += 1
    finally:
        PyMem_Free(token)
