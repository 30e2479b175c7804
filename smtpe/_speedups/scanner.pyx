# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The message scanner: fed a message (the real message, any chunking), it gives the header
events for hook.header/eoh/body, the MIME parts for `mime.parts` and the URIs of decoded text
parts for `uri.found`.

    s = MessageScanner(body_lines=False, mime=True, events=True)
    events = s.feed(chunk)     # [(HEADER, field) | (EOH, b"") | (BODY, line)]
    events = s.finish()        # at the dot
    s.parts, s.uris, s.eoh_offset, s.length

Each of the two machines below can run alone. DATA runs the header splitter alone
(mime=False): once the top headers are over a chunk costs nothing, unless body_lines. The MIME
machine runs alone (events=False: no events, eoh_offset stays 0) over the spooled message, and
only for a script that reads `mime.parts` or `uri.found` (smtpe/api/mime.py). `full_scans()`
counts the scanners made with the MIME machine.

`uris` holds each URI once (the first occurrence of each uri_raw, as uri.found keeps them),
at most MAX_URIS of them; tokens are parsed by smtpe.uri.parse (or MessageScanner(...,
parse_uri=f)). Lines end at LF (CRLF as smtpe delivers it, or bare LF).

Two small machines read each chunk:
* the header splitter (while in the top headers, or for every line when body_lines): a
  header continues while the next line starts with SP/HT, so a header is complete only when
  the next line's first byte is known (a header split across chunks is one event);
* the MIME machine, shared/spec/helpers.md §3 (part model, lengths, MD5s, decoders) and §4.3
  (URIs), except where smtpe differs on purpose:
  - boundaries are the `boundary=` parameters of the open multiparts (innermost first; a
    line `--b` or `--b--`, trailing blanks allowed), not any `--x` line: text such as
    `--verbose`, a `--=20` signature or a dash line cannot split or hide a part;
  - body_length is the length of the encoded body (the original's counter accumulated over
    parts without a blank line after their headers);
  - the decoded stream of the last part keeps its final line break;
  - `message/rfc822; x=y` is an embedded message like `message/rfc822`;
  - a part whose headers run to the end is an entry with an empty body.

Work per chunk is linear in the chunk: message bodies are hashed and decoded in runs, only
lines starting with `--` are compared with the open boundaries, and text is skimmed for the
few bytes a URI needs before any token is looked at. State is bounded: at most MAX_DEPTH open
boundaries, header-phase lines kept up to MAX_LINE bytes, Content-* lines up to
MAX_HEADER_KEPT, URI tokens up to MAX_TOKEN, events up to MAX_EVENT bytes (the rest of a
longer header or body line is cut from the event, not from the message).
"""
import hashlib
import re
from html.entities import name2codepoint

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memchr, memcpy

ctypedef unsigned char uchar

HEADER, EOH, BODY = 0, 1, 2
DEF MAX_TOKEN = 1024
MAX_DEPTH = 64
MAX_LINE = 65536
MAX_HEADER_KEPT = 8192
MAX_BOUNDARY = 200          # longest boundary parameter taken (RFC 2046: 70)
MAX_URI_CACHE = 4096        # parse results remembered per message (HTML repeats its links)
MAX_CACHED_TOKEN = 256      # ... of tokens up to this long
MAX_URIS = 5000             # distinct URIs reported per message
DEF MAX_EVENT = 1048576     # longest header or body line an event carries (the rest is cut)
MAX_EVENT_LENGTH = MAX_EVENT

cdef enum Encoding:
    LITERAL = 0
    QUOTED_PRINTABLE = 1
    BASE64 = 2

cdef enum LineState:
    LINE_START = 0            # next byte starts a body line
    IN_CANDIDATE = 1          # the line so far starts with '-': may be a delimiter
    MID_LINE = 2              # inside a line known not to be a delimiter

cdef enum:
    CR = 13
    LF = 10

_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))', re.I)
_TEXT_APPLICATION = re.compile(rb";.*name=.*\.(txt|htm)", re.S)
_ENTITIES = {name.encode(): code for name, code in name2codepoint.items() if code <= 255}
SPACE_BYTES = b" \t\n\v\f\r"

# -- byte classes -----------------------------------------------------------------------------
cdef signed char B64_VALUE[256]      # 0..63, -1 outside the alphabet, -2 for '='
cdef signed char HEX_VALUE[256]      # 0..15 or -1
cdef uchar TOKEN_DELIMITER[256]      # ends a URI token
cdef uchar URI_HINT[256]             # ':', '@', '%': a token may be a URI
cdef uchar TOKEN_CLASS[256]          # what the URI tokenizer does with a byte
cdef uchar INTERESTING[256]          # a token with none of these bytes cannot be a URI

cdef enum TokenClass:
    ORDINARY = 0                     # part of a token
    DELIMITER = 1                    # ends a token
    IGNORED = 2                      # CR
    SPECIAL = 3                      # `;` (HTML entity), C/D/O (Big5 dot after 0xA1)


def _init_tables():
    cdef int byte
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for byte in range(256):
        B64_VALUE[byte] = -1
        HEX_VALUE[byte] = -1
        TOKEN_DELIMITER[byte] = False
        URI_HINT[byte] = False
    for byte in range(64):
        B64_VALUE[alphabet[byte]] = byte
    B64_VALUE[ord("=")] = -2
    for byte, digit in zip(b"0123456789abcdef", range(16)):
        HEX_VALUE[byte] = digit
    for byte, digit in zip(b"ABCDEF", range(10, 16)):
        HEX_VALUE[byte] = digit
    for byte in b" \t\n\v\f\r\0\"<>{}\\^`":
        TOKEN_DELIMITER[byte] = True
    for byte in b":@%":
        URI_HINT[byte] = True
    for byte in range(256):
        TOKEN_CLASS[byte] = DELIMITER if TOKEN_DELIMITER[byte] else ORDINARY
    TOKEN_CLASS[CR] = IGNORED
    for byte in b";CDO":
        TOKEN_CLASS[byte] = SPECIAL
    for byte in range(256):
        INTERESTING[byte] = False
    for byte in b":@%.&":
        INTERESTING[byte] = True
    INTERESTING[0xA1] = True           # (a bytes literal would hold it as a signed char)


_init_tables()


# -- decoders (streaming; shared/spec/helpers.md §3.3) ------------------------------------------
cdef struct Base64State:
    unsigned int bits
    int count
    bint done


cdef Py_ssize_t base64_feed(Base64State *state, const uchar *data, Py_ssize_t size, uchar *out) noexcept nogil:
    """Bytes outside the alphabet are skipped; `xx=`, `xxx=` or `=` at the start of a quantum
    end the data for good; `=` after one character is ignored."""
    cdef Py_ssize_t index, written = 0
    cdef signed char value
    if state.done:
        return 0
    for index in range(size):
        value = B64_VALUE[data[index]]
        if value >= 0:
            state.bits = (state.bits << 6) | <unsigned int>value
            state.count += 1
            if state.count == 4:
                out[written] = (state.bits >> 16) & 0xFF
                out[written + 1] = (state.bits >> 8) & 0xFF
                out[written + 2] = state.bits & 0xFF
                written += 3
                state.bits = 0
                state.count = 0
        elif value == -2 and state.count != 1:
            written += base64_finish(state, out + written)
            state.done = True
            return written
    return written


cdef Py_ssize_t base64_finish(Base64State *state, uchar *out) noexcept nogil:
    """The complete bytes of a partial last quantum (`QUJDRA` ends in `D`)."""
    cdef unsigned int bits
    cdef Py_ssize_t written = 0
    if state.count >= 2:
        bits = state.bits << (6 * (4 - state.count))
        out[0] = (bits >> 16) & 0xFF
        written = 1
        if state.count == 3:
            out[1] = (bits >> 8) & 0xFF
            written = 2
    state.bits = 0
    state.count = 0
    return written


cdef struct QpState:
    int step              # 0: plain, 1: after '=', 2: after '=' and one hex digit
    uchar first


cdef Py_ssize_t qp_feed(QpState *state, const uchar *data, Py_ssize_t size, uchar *out) noexcept nogil:
    """`=HH` (either case) is the byte; `=` LF a soft break; `=` CR loses the CR; any other
    `=` sequence stays literal; trailing blanks are kept."""
    cdef Py_ssize_t index, written = 0
    cdef uchar byte
    for index in range(size):
        byte = data[index]
        if state.step == 0:
            if byte == b'=':
                state.step = 1
            else:
                out[written] = byte
                written += 1
        elif state.step == 1:
            if byte == CR:
                continue
            if byte == LF:
                state.step = 0
            elif HEX_VALUE[byte] >= 0:
                state.first = byte
                state.step = 2
            else:
                out[written] = b'='
                out[written + 1] = byte
                written += 2
                state.step = 0
        else:
            if HEX_VALUE[byte] >= 0:
                out[written] = <uchar>(HEX_VALUE[state.first] * 16 + HEX_VALUE[byte])
                written += 1
            else:
                out[written] = b'='
                out[written + 1] = state.first
                out[written + 2] = byte
                written += 3
            state.step = 0
    return written


cdef Py_ssize_t qp_finish(QpState *state, bint at_boundary, uchar *out) noexcept nogil:
    """An unfinished `=`/`=H` stays at the end of the message, is dropped at a boundary."""
    cdef Py_ssize_t written = 0
    if not at_boundary and state.step >= 1:
        out[0] = b'='
        written = 1
        if state.step == 2:
            out[1] = state.first
            written = 2
    state.step = 0
    return written


# -- small helpers ------------------------------------------------------------------------------
cdef inline bytes _slice(const uchar *data, Py_ssize_t size):
    return PyBytes_FromStringAndSize(<const char *>data, size)


cdef tuple _split_break(bytes line):
    """(content, line break) of a line that ends in LF, CRLF or nothing."""
    cdef Py_ssize_t content = PyBytes_GET_SIZE(line) - _break_length(line)
    return line[:content], line[content:]


cdef inline Py_ssize_t _break_length(bytes line):
    """Length of the line break (CRLF, LF or none) ending `line`."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(line)
    cdef const char *data = PyBytes_AS_STRING(line)
    if size and data[size - 1] == b'\n':
        return 2 if size > 1 and data[size - 2] == b'\r' else 1
    return 0


cdef bytes _media_type(bytes content_type):
    value = content_type.split(b":", 1)[1]
    return value.split(b";", 1)[0].strip(SPACE_BYTES).lower()


cdef bint _is_text(object content_type):
    """Parts whose decoded body is searched for URIs (§4.3)."""
    if content_type is None:
        return True
    if b"/" not in content_type.split(b":", 1)[1]:
        return True
    kind = _media_type(content_type)
    if kind.startswith(b"text/") or kind.startswith(b"multipart/"):
        return True
    return kind.startswith(b"application/") and \
        _TEXT_APPLICATION.search(content_type.lower()) is not None


cdef bint _is_header_line(bytes content, bint top_part):
    """A name of bytes other than space and controls (CR ignored), then a colon; the top
    part also takes an mbox `From ` line."""
    cdef Py_ssize_t index, colon
    cdef const uchar *data = <const uchar *>PyBytes_AS_STRING(content)
    cdef uchar byte
    if top_part and content.startswith(b"From "):
        return True
    colon = content.find(b":")
    if colon < 0 or colon >= MAX_LINE:
        return False
    for index in range(colon):
        byte = data[index]
        if (byte <= 0x20 or byte == 0x7F) and byte != CR:
            return False
    return True


cdef object _boundary_of(bytes content_type):
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    value = found.group(1) if found.group(1) is not None else found.group(2)
    if not value or len(value) > MAX_BOUNDARY:
        return None
    return value


cdef int _entity_value(bytes name):
    """The byte of HTML entity `name` (between & and ;), -1 if not one."""
    cdef int value
    if name.startswith(b"#x"):
        digits = name[2:]
        if not digits or len(digits) > 8 or any(HEX_VALUE[byte] < 0 for byte in digits):
            return -1
        value = int(digits, 16)
    elif name.startswith(b"#"):
        digits = name[1:]
        if not digits.isdigit() or len(digits) > 8:
            return -1
        value = int(digits)
    else:
        value = _ENTITIES.get(name, -1)
    return value if 0 < value <= 255 else -1


# -- the scanner --------------------------------------------------------------------------------
cdef long long full_scan_count = 0


def full_scans():
    """How many scanners with the MIME machine were made (the tests prove with it that a
    script that reads neither `mime.parts` nor `uri.found` costs no MIME scan)."""
    return full_scan_count


cdef class MessageScanner:
    cdef public list parts, uris
    cdef public long long length, eoh_offset
    cdef readonly bint body_lines, mime
    cdef object _parse_uri, _clean_token
    # header splitter
    cdef bint ev_active, ev_in_headers
    cdef bytearray ev_line          # the line being read (its first MAX_EVENT + 2 bytes)
    cdef list ev_pending            # raw lines (with breaks) of the header being collected
    cdef Py_ssize_t ev_pending_size # their whole length (the list keeps MAX_EVENT + 2 bytes)
    # MIME: the open boundaries and the current part
    cdef list boundaries            # bytes, innermost last
    cdef long long part_start       # message offset of the part's first byte
    cdef bint part_top, in_body, header_seen, rfc822, text
    cdef object pending             # the header line being unfolded (bytes) or None
    cdef object content_type, transfer_encoding
    cdef int encoding
    cdef Py_ssize_t pushed          # index in boundaries of the boundary this part opened
    cdef object md5_encoded, md5_decoded
    cdef long long body_length
    cdef bint literal_cr            # literal part: a final CR not hashed yet (see _close_part)
    cdef Base64State b64
    cdef QpState qp
    # MIME line assembly
    cdef bytearray hline            # header-phase line so far
    cdef bint hskip                 # header phase: skipping the rest of an overlong line
    cdef int line_state
    cdef bytes held                 # body line break (or lone CR) not emitted yet
    cdef bytearray candidate        # body line that starts with '-' (a delimiter?)
    cdef long long consumed         # bytes the MIME machine has taken
    # decoded output and URI tokens
    cdef uchar *scratch
    cdef Py_ssize_t scratch_size
    cdef uchar token[MAX_TOKEN + 2]
    cdef Py_ssize_t token_length
    cdef bint token_too_long
    cdef dict uri_cache
    cdef set uris_seen              # uri_raw of the URIs reported

    def __cinit__(self):
        self.scratch = NULL
        self.scratch_size = 0

    def __dealloc__(self):
        PyMem_Free(self.scratch)

    def __init__(self, body_lines=False, parse_uri=None, mime=True, events=True):
        global full_scan_count
        self.body_lines = bool(body_lines)
        self.mime = bool(mime)
        self.parts = []
        self.uris = []
        self.length = 0
        self.eoh_offset = 0
        self.ev_active = bool(events)
        self.ev_in_headers = bool(events)
        self.ev_line = bytearray()
        self.ev_pending = None
        self.ev_pending_size = 0
        self.boundaries = []
        self.hline = bytearray()
        self.hskip = False
        self.candidate = bytearray()
        self.consumed = 0
        self.uri_cache = {}
        self.uris_seen = set()
        if self.mime:
            full_scan_count += 1
            from smtpe import uri as uri_module   # the URI rules live with uri.parse
            self._parse_uri = parse_uri if parse_uri is not None else uri_module.parse
            self._clean_token = uri_module.clean_token
            self._new_part(0, True)

    # -- public ---------------------------------------------------------------------------------
    def feed(self, chunk):
        """Events of the next piece of the message."""
        cdef list events = []
        if not self.ev_active and not self.mime:   # nothing left to look at: count it only
            self.length += len(chunk)
            return events
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        cdef const uchar *data = <const uchar *>PyBytes_AS_STRING(chunk)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(chunk)
        if size == 0:
            return events
        if self.ev_active:
            self._split_headers(data, size, events)
        if self.mime:
            self._mime_feed(data, size)
        self.length += size
        return events

    def finish(self):
        """Events still due at the end of the message; completes parts and uris."""
        cdef list events = []
        self._finish_headers(events)
        if self.mime:
            self._finish_mime()
        return events

    # -- header splitter ------------------------------------------------------------------------
    cdef void _split_headers(self, const uchar *data, Py_ssize_t size, list events):
        cdef Py_ssize_t index = 0, end
        cdef const uchar *found
        while index < size and self.ev_active:
            if self.ev_pending is not None and not self.ev_line and data[index] != b' ' and data[index] != b'\t':
                self._emit_header(events)      # the next line's first byte is not a fold
            found = <const uchar *>memchr(data + index, LF, size - index)
            end = size if found == NULL else found + 1 - data
            if found != NULL and not self.ev_line:   # a whole line in this chunk: one copy
                line = _slice(data + index, min(end - index, MAX_EVENT + 2))
                index = end
                self._header_line(line, self.length + index, events)
                continue
            self._line_add(data + index, end - index)
            index = end
            if found != NULL:
                line = bytes(self.ev_line)
                self.ev_line.clear()
                self._header_line(line, self.length + index, events)

    cdef void _line_add(self, const uchar *data, Py_ssize_t size):
        """Keep the first MAX_EVENT + 2 bytes of the line (an event is cut at MAX_EVENT)."""
        cdef Py_ssize_t room = MAX_EVENT + 2 - len(self.ev_line)
        if room > 0:
            self.ev_line += _slice(data, min(size, room))

    cdef void _header_line(self, bytes line, long long end_offset, list events):
        if not self.ev_in_headers:
            events.append((BODY, _split_break(line)[0][:MAX_EVENT]))
            return
        if self.ev_pending is not None:
            first = line[:1]
            if first == b" " or first == b"\t":
                self._pending_add(line)
                return
            self._emit_header(events)
        if line == b"\r\n" or line == b"\n":
            events.append((EOH, b""))
            self.ev_in_headers = False
            self.ev_active = self.body_lines
            self.eoh_offset = end_offset
            return
        self.ev_pending = []
        self.ev_pending_size = 0
        self._pending_add(line)

    cdef void _pending_add(self, bytes line):
        cdef Py_ssize_t room = MAX_EVENT + 2 - self.ev_pending_size
        if room > 0:
            self.ev_pending.append(line[:room])
        self.ev_pending_size += len(line)

    cdef void _emit_header(self, list events):
        """The header without its final line break, cut at MAX_EVENT bytes."""
        field = self.ev_pending[0] if len(self.ev_pending) == 1 else b"".join(self.ev_pending)
        if self.ev_pending_size == len(field):         # whole: take its line break off
            field = field[:len(field) - _break_length(field)]
        self.ev_pending = None
        events.append((HEADER, field[:MAX_EVENT]))

    cdef void _finish_headers(self, list events):
        if self.ev_line:
            line = bytes(self.ev_line)
            self.ev_line.clear()
            if self.ev_in_headers:
                if self.ev_pending is not None and line[:1] in (b" ", b"\t"):
                    self._pending_add(line)
                else:
                    if self.ev_pending is not None:
                        self._emit_header(events)
                    self.ev_pending = []
                    self.ev_pending_size = 0
                    self._pending_add(line)
            elif self.body_lines:
                events.append((BODY, line[:MAX_EVENT]))
        if self.ev_pending is not None:
            self._emit_header(events)
        if self.ev_in_headers:
            events.append((EOH, b""))
            self.ev_in_headers = False
        self.ev_active = False

    # -- MIME: feeding ---------------------------------------------------------------------------
    cdef void _mime_feed(self, const uchar *data, Py_ssize_t size):
        cdef Py_ssize_t index = 0
        while index < size:
            if not self.in_body:
                index = self._header_phase(data, index, size)
            elif self.boundaries:
                index = self._body_with_boundaries(data, index, size)
            else:
                # no open boundary: the rest of the message is this part's body
                if self.held:
                    self._emit_bytes(self.held)
                    self.held = b""
                self._emit(data + index, size - index)
                index = size
        self.consumed += size

    cdef Py_ssize_t _header_phase(self, const uchar *data, Py_ssize_t index, Py_ssize_t size):
        """Take one header-phase line (or keep its start); return where the next begins."""
        cdef const uchar *found = <const uchar *>memchr(data + index, LF, size - index)
        cdef Py_ssize_t end = size if found == NULL else found + 1 - data
        cdef Py_ssize_t taken = end - index
        if self.hskip:
            self.hskip = found == NULL
            return end
        if found == NULL and len(self.hline) + taken <= MAX_LINE:
            self.hline += _slice(data + index, taken)
            return end
        line = _slice(data + index, taken)
        if self.hline:
            line = bytes(self.hline) + line
            self.hline.clear()
        if found == NULL:
            return self._overlong_header_line(line, end)
        self._mime_line(line, self.consumed + index - (len(line) - taken))
        return end

    cdef Py_ssize_t _overlong_header_line(self, bytes line, Py_ssize_t end):
        """A header-phase line past MAX_LINE: a header (or fold) keeps its first bytes and
        skips the rest; anything else starts the body (too long to be a delimiter)."""
        cdef long long start = self.consumed + end - len(line)
        first = line[:1]
        if (self.pending is not None and (first == b" " or first == b"\t")) or _is_header_line(line, self.part_top):
            self._mime_line(line, start)
            self.hskip = True
            return end
        if self.pending is not None:
            self._complete_header()
        self._start_body()
        self.line_state = MID_LINE
        if line.endswith(b"\r"):              # maybe half of the CRLF ending the line
            line = line[:len(line) - 1]
            self.held = b"\r"
        self._emit_bytes(line)
        return end

    cdef void _mime_line(self, bytes line, long long offset):
        """One header-phase line (content + break), starting at message offset `offset`."""
        content, brk = _split_break(line)
        first = content[:1]
        is_fold = first == b" " or first == b"\t"
        if self.pending is not None and not is_fold:
            self._complete_header()
        depth = self._delimiter_depth(content)
        if depth is not None:
            self._delimiter(depth, offset, offset + len(line), 0)
            return
        if self.pending is not None:
            self.pending = (self.pending + b" " + content[1:])[:MAX_HEADER_KEPT]
            return
        if content == b"" and brk:
            self._start_body()
            if self.header_seen and self.rfc822:
                # the embedded message starts at once, with its own headers
                self._close_part(True, offset + len(line))
                self._new_part(offset + len(line), False)
            return
        if _is_header_line(content, self.part_top):
            self.pending = content[:MAX_HEADER_KEPT]
            return
        self._start_body()
        self._emit(<const uchar *>PyBytes_AS_STRING(content), len(content))
        self.held = brk
        self.line_state = LINE_START

    cdef Py_ssize_t _body_with_boundaries(self, const uchar *data, Py_ssize_t index, Py_ssize_t size):
        """Body lines while boundaries are open: runs of bytes are emitted as they are, the
        line break before each line is held back until the line is known not to be a
        delimiter. Returns where the body stopped: after a delimiter, or the chunk's end."""
        cdef const uchar *found
        cdef Py_ssize_t run = index        # first byte of the run not emitted yet
        cdef Py_ssize_t kept = index       # end of the run known to be body
        cdef Py_ssize_t content_end, line_start
        cdef bint external = True          # the held break is self.held, not in this chunk
        if self.line_state == MID_LINE:
            index = self._finish_mid_line(data, index, size)
            run = kept = index
        elif self.line_state == IN_CANDIDATE:
            index = self._continue_candidate(data, index, size)
            if index < 0:                      # a delimiter: the part changed
                return -index - 1
            run = kept = index
        while index < size and self.line_state == LINE_START:
            line_start = index
            if data[index] == b'-':
                found = <const uchar *>memchr(data + index, LF, size - index)
                if found == NULL:
                    self._flush(data, run, kept, external)
                    if not external:
                        self.held = _slice(data + kept, line_start - kept)
                    self.candidate += _slice(data + index, size - index)
                    self.line_state = IN_CANDIDATE
                    return size
                content_end = found - data
                if content_end > index and data[content_end - 1] == CR:
                    content_end -= 1
                depth = self._delimiter_depth(_slice(data + index, content_end - index))
                if depth is not None:
                    self._flush(data, run, kept, external)
                    held_size = len(self.held) if external else line_start - kept
                    self.held = b""
                    self._delimiter(depth, self.consumed + line_start - held_size,
                                    self.consumed + (found + 1 - data), held_size)
                    return found + 1 - data
            found = <const uchar *>memchr(data + index, LF, size - index)
            if found == NULL:
                # a partial line: all body (so is the break before it), but a final CR
                # may be half of a CRLF
                content_end = size - 1 if data[size - 1] == CR else size
                if external:
                    self._emit_bytes(self.held)
                    external = False
                self._flush(data, run, content_end, False)
                self.held = b"\r" if content_end < size else b""
                self.line_state = MID_LINE
                return size
            content_end = found - data
            if content_end > index and data[content_end - 1] == CR:
                content_end -= 1
            if external:                       # this line is body, so the held break is too
                self._emit_bytes(self.held)
                self.held = b""
                external = False
            kept = content_end
            index = found + 1 - data
        self._flush(data, run, kept, external)
        if not external:
            self.held = _slice(data + kept, index - kept)
        return index

    cdef void _flush(self, const uchar *data, Py_ssize_t run, Py_ssize_t kept, bint external):
        if kept > run:
            if external and self.held:
                self._emit_bytes(self.held)
                self.held = b""
            self._emit(data + run, kept - run)

    cdef Py_ssize_t _finish_mid_line(self, const uchar *data, Py_ssize_t index, Py_ssize_t size):
        """The rest of a body line begun in an earlier chunk (not a delimiter)."""
        cdef const uchar *found
        cdef Py_ssize_t content_end
        if self.held == b"\r":
            if data[index] == LF:
                self.held = b"\r\n"
                self.line_state = LINE_START
                return index + 1
            self._emit_bytes(self.held)
            self.held = b""
        found = <const uchar *>memchr(data + index, LF, size - index)
        if found == NULL:
            content_end = size - 1 if data[size - 1] == CR else size
            self._emit(data + index, content_end - index)
            self.held = b"\r" if content_end < size else b""
            return size
        content_end = found - data
        if content_end > index and data[content_end - 1] == CR:
            content_end -= 1
        self._emit(data + index, content_end - index)
        self.held = _slice(data + content_end, found + 1 - data - content_end)
        self.line_state = LINE_START
        return found + 1 - data

    cdef Py_ssize_t _continue_candidate(self, const uchar *data, Py_ssize_t index, Py_ssize_t size):
        """More of a line that started with '-'. Returns where the body goes on, or
        -(offset + 1) after a delimiter."""
        cdef const uchar *found = <const uchar *>memchr(data + index, LF, size - index)
        cdef Py_ssize_t end = size if found == NULL else found + 1 - data
        self.candidate += _slice(data + index, end - index)
        if found == NULL and len(self.candidate) <= MAX_BOUNDARY + 64:
            return size
        line = bytes(self.candidate)
        self.candidate.clear()
        content, brk = _split_break(line) if found != NULL else (line, b"")
        depth = self._delimiter_depth(content) if found != NULL else None
        if depth is not None:
            held_size = len(self.held)
            self.held = b""
            self._delimiter(depth, self.consumed + end - len(line) - held_size,
                            self.consumed + end, held_size)
            return -end - 1
        self._emit_bytes(self.held)
        if found == NULL:                      # too long for a delimiter: body, line goes on
            if content.endswith(b"\r"):
                content = content[:len(content) - 1]
                brk = b"\r"
            self.line_state = MID_LINE
        else:
            self.line_state = LINE_START
        self._emit_bytes(content)
        self.held = brk
        return end

    # -- MIME: headers and delimiters -----------------------------------------------------------
    cdef void _complete_header(self):
        """Act on the unfolded header line now complete (§3.2)."""
        line = self.pending
        self.pending = None
        self.header_seen = True
        lowered = line.lower()
        if lowered.startswith(b"content-transfer-encoding:"):
            self.transfer_encoding = line
            if b"quoted-printable" in lowered:
                self.encoding = QUOTED_PRINTABLE
            elif b"base64" in lowered:
                self.encoding = BASE64
        elif lowered.startswith(b"content-type:"):
            self.content_type = line
            kind = _media_type(line)
            self.rfc822 = kind == b"message/rfc822"
            if self.pushed >= 0:            # a later Content-Type replaces the earlier one
                del self.boundaries[self.pushed:]
                self.pushed = -1
            boundary = _boundary_of(line) if kind.startswith(b"multipart/") else None
            if boundary is not None and len(self.boundaries) < MAX_DEPTH:
                self.pushed = len(self.boundaries)
                self.boundaries.append(boundary)

    cdef object _delimiter_depth(self, bytes content):
        """(depth, closing) when `content` is `--b` or `--b--` of an open boundary b."""
        cdef Py_ssize_t depth
        if not self.boundaries or not content.startswith(b"--"):
            return None
        text = content.rstrip(b" \t")[2:]
        for depth in range(len(self.boundaries) - 1, -1, -1):
            boundary = self.boundaries[depth]
            if text == boundary:
                return depth, False
            if len(text) == len(boundary) + 2 and text.endswith(b"--") and text.startswith(boundary):
                return depth, True
        return None

    cdef void _delimiter(self, object depth_closing, long long line_start, long long next_part, Py_ssize_t held_size):
        """A delimiter line at `line_start` (its held line break before it, `held_size`
        bytes, is not part of anything): close the part, pop inner boundaries, start the
        next part (in its headers) after the line."""
        depth, closing = depth_closing
        self._close_part(True, line_start)
        del self.boundaries[depth + (0 if closing else 1):]
        self._new_part(next_part, False)

    # -- MIME: parts ----------------------------------------------------------------------------
    cdef void _new_part(self, long long start, bint top):
        self.part_start = start
        self.part_top = top
        self.in_body = False
        self.header_seen = False
        self.rfc822 = False
        self.text = False
        self.pending = None
        self.content_type = None
        self.transfer_encoding = None
        self.encoding = LITERAL
        self.pushed = -1
        self.body_length = 0
        self.literal_cr = False
        self.md5_encoded = hashlib.md5()
        self.md5_decoded = None
        self.b64.bits = 0
        self.b64.count = 0
        self.b64.done = False
        self.qp.step = 0
        self.line_state = LINE_START
        self.held = b""
        self.token_length = 0
        self.token_too_long = False

    cdef void _start_body(self):
        self.in_body = True
        self.held = b""
        self.line_state = LINE_START
        self.text = _is_text(self.content_type)
        if self.encoding != LITERAL:
            self.md5_decoded = hashlib.md5()

    cdef void _close_part(self, bint at_boundary, long long end):
        """Push the part's entry; `end` is the offset just past its last byte."""
        cdef Py_ssize_t written
        if self.pending is not None:
            self._complete_header()
        if not at_boundary and self.held:
            self._emit_bytes(self.held)
        self.held = b""
        encoded = self.md5_encoded
        if self.encoding == LITERAL:
            # one digest for both streams: a final CR is hashed here, and is not part of
            # the decoded stream when a boundary follows
            decoded = encoded.copy()
            if self.literal_cr:
                encoded.update(b"\r")
                if not at_boundary:
                    decoded.update(b"\r")
        else:
            if self.md5_decoded is None:     # closed before its body began
                self.md5_decoded = hashlib.md5()
            self._reserve(4)
            if self.encoding == BASE64:
                written = base64_finish(&self.b64, self.scratch)
            else:
                written = qp_finish(&self.qp, at_boundary, self.scratch)
            self._decoded_out(self.scratch, written)
            decoded = self.md5_decoded
        if self.text:
            self._token_end()
        self.parts.append({
            "md5_encoded": encoded.hexdigest().encode(),
            "md5_decoded": decoded.hexdigest().encode(),
            "part_length": end - self.part_start,
            "body_length": self.body_length,
            "content_type": self.content_type,
            "content_transfer_encoding": self.transfer_encoding,
        })

    cdef void _finish_mime(self):
        if self.hline or self.hskip:
            line = bytes(self.hline)
            self.hline.clear()
            if line and not self.hskip:
                self._mime_line(line, self.consumed - len(line))
            self.hskip = False
        if self.candidate:
            line = bytes(self.candidate)
            self.candidate.clear()
            depth = self._delimiter_depth(line)
            if depth is not None:
                held_size = len(self.held)
                self.held = b""
                self._delimiter(depth, self.consumed - len(line) - held_size, self.consumed, held_size)
            else:
                self._emit_bytes(self.held)
                self.held = b""
                self._emit_bytes(line)
        if self.in_body or self.pending is not None or self.consumed > self.part_start:
            self._close_part(False, self.consumed)
            self._new_part(self.consumed, False)

    # -- MIME: body bytes -----------------------------------------------------------------------
    cdef void _emit_bytes(self, bytes data):
        if data:
            self._emit(<const uchar *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef void _emit(self, const uchar *data, Py_ssize_t size):
        """Body bytes of the current part: hashed, decoded, searched for URIs."""
        cdef Py_ssize_t written
        if size <= 0:
            return
        self.body_length += size
        if self.encoding == LITERAL:
            if self.literal_cr:
                self.md5_encoded.update(b"\r")
            # hold a final CR back: a boundary may drop it from the decoded stream
            self.literal_cr = data[size - 1] == CR
            self.md5_encoded.update(_slice(data, size - self.literal_cr))
            if self.text:
                self._tokenize(data, size)
            return
        self.md5_encoded.update(_slice(data, size))
        self._reserve(size + 4)
        if self.encoding == BASE64:
            written = base64_feed(&self.b64, data, size, self.scratch)
        else:
            written = qp_feed(&self.qp, data, size, self.scratch)
        self._decoded_out(self.scratch, written)

    cdef void _decoded_out(self, const uchar *data, Py_ssize_t size):
        if size > 0:
            self.md5_decoded.update(_slice(data, size))
            if self.text:
                self._tokenize(data, size)

    cdef void _reserve(self, Py_ssize_t size):
        cdef uchar *grown
        if size > self.scratch_size:
            grown = <uchar *>PyMem_Realloc(self.scratch, size)
            if grown == NULL:
                raise MemoryError()
            self.scratch = grown
            self.scratch_size = size

    # -- URIs in decoded text (§4.3) ------------------------------------------------------------
    cdef void _tokenize(self, const uchar *data, Py_ssize_t size):
        """Decoded text into tokens. Only a token holding one of `: @ % . &` or 0xA1 can
        become a URI (or change under the rules for entities and Big5 dots), so text is
        skimmed for those bytes and just their tokens go through the byte rules."""
        cdef Py_ssize_t index = 0, found, start
        if self.token_length or self.token_too_long:
            index = self._token_bytes(data, 0, size)    # a token from the last piece
        while index < size:
            found = index
            while found < size and not INTERESTING[data[found]]:
                found += 1
            start = found
            while start > index and TOKEN_CLASS[data[start - 1]] != DELIMITER:
                start -= 1                              # back to the start of its token
            index = self._token_bytes(data, start, size)

    cdef Py_ssize_t _token_bytes(self, const uchar *data, Py_ssize_t index, Py_ssize_t size):
        """The byte rules from `index` until the current token ends; returns the index after
        its delimiter (or size). Runs of ordinary bytes are copied at once."""
        cdef Py_ssize_t start
        cdef uchar byte, kind
        while index < size:
            start = index
            while index < size and TOKEN_CLASS[data[index]] == ORDINARY:
                index += 1
            if index > start:
                self._token_append(data + start, index - start)
            if index == size:
                return size
            byte = data[index]
            index += 1
            kind = TOKEN_CLASS[byte]
            if kind == DELIMITER:
                if self.token_length or self.token_too_long:
                    self._token_end()
                return index
            if kind == SPECIAL and not self.token_too_long:
                self._token_special(byte)
        return size

    cdef inline void _token_append(self, const uchar *data, Py_ssize_t size) noexcept:
        if self.token_too_long:
            return
        if self.token_length + size > MAX_TOKEN:
            self.token_too_long = True     # a run this long is thrown away
            return
        memcpy(self.token + self.token_length, data, size)
        self.token_length += size

    cdef inline void _token_end(self):
        """A delimiter: only tokens that may hold a URI reach Python."""
        if not self.token_too_long and _may_hold_uri(self.token, self.token_length):
            self._token_uri()
        self.token_length = 0
        self.token_too_long = False

    cdef void _token_special(self, uchar byte):
        if byte != b';':
            if self.token_length and self.token[self.token_length - 1] == 0xA1:
                self.token[self.token_length - 1] = b'.'   # Big5 full-width dot
                return
            self._token_append(&byte, 1)
            return
        self.token[self.token_length] = byte   # room: the buffer has MAX_TOKEN + 2 bytes
        self.token_length += 1
        self._entity()
        if self.token_length > MAX_TOKEN:
            self.token_too_long = True

    cdef void _entity(self):
        """At `;`: decode the HTML entity from the last `&`; `&nbsp;` ends the token,
        `&shy;` disappears."""
        cdef Py_ssize_t amp = self.token_length - 2
        cdef int value
        while amp >= 0 and self.token[amp] != b'&':
            amp -= 1
        if amp < 0:
            return
        value = _entity_value(_slice(self.token + amp + 1, self.token_length - amp - 2))
        if value < 0:
            return
        self.token_length = amp
        if value == 0xA0:
            self._token_end()
        elif value != 0xAD:
            self.token[amp] = <uchar>value
            self.token_length = amp + 1

    cdef void _token_uri(self):
        token = _slice(self.token, self.token_length)
        found = self.uri_cache.get(token, self)      # self: not looked at yet
        if found is self:
            candidate = self._clean_token(token)
            found = self._parse_uri(candidate) if candidate else None
            if len(self.uri_cache) < MAX_URI_CACHE and len(token) <= MAX_CACHED_TOKEN:
                self.uri_cache[token] = found
        if found is not None and found["uri_raw"] not in self.uris_seen and len(self.uris) < MAX_URIS:
            self.uris_seen.add(found["uri_raw"])
            entry = dict(found)
            entry["mime_part"] = len(self.parts) + 1
            self.uris.append(entry)


cdef inline bint _may_hold_uri(const uchar *token, Py_ssize_t length) noexcept:
    """False for tokens that cannot parse as a URI: one needs a `:`, `@` or `%`, or a dot
    before the last byte (smtpe.uri.may_be_uri, before the token's clean-up, which only
    removes bytes)."""
    cdef Py_ssize_t index
    for index in range(length):
        if URI_HINT[token[index]] or (token[index] == b'.' and index < length - 1):
            return True
    return False


# -- the decoders and the tokenizer on their own, for the property tests ------------------------
def decode_base64(chunks):
    """Base64 decoding of the concatenated chunks, fed one by one, then finished."""
    cdef Base64State state
    state.bits = 0
    state.count = 0
    state.done = False
    out = bytearray()
    cdef bytes chunk
    cdef bytearray buffer
    for chunk in chunks:
        buffer = bytearray(len(chunk) + 4)
        out += buffer[:base64_feed(&state, <const uchar *>PyBytes_AS_STRING(chunk), len(chunk),
                                   <uchar *>(<char *>buffer))]
    buffer = bytearray(4)
    out += buffer[:base64_finish(&state, <uchar *>(<char *>buffer))]
    return bytes(out)


def decode_quoted_printable(chunks, at_boundary=False):
    """Quoted-printable decoding of the concatenated chunks, fed one by one, then finished
    (as at a boundary, or at the end of the message)."""
    cdef QpState state
    state.step = 0
    state.first = 0
    out = bytearray()
    cdef bytes chunk
    cdef bytearray buffer
    for chunk in chunks:
        buffer = bytearray(len(chunk) + 4)
        out += buffer[:qp_feed(&state, <const uchar *>PyBytes_AS_STRING(chunk), len(chunk),
                               <uchar *>(<char *>buffer))]
    buffer = bytearray(4)
    out += buffer[:qp_finish(&state, at_boundary, <uchar *>(<char *>buffer))]
    return bytes(out)
