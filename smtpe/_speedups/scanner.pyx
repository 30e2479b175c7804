# cython: language_level=3
"""The message scanner: one pass over the DATA stream (real message bytes, CRLF line ends,
any chunking) producing the header events for hook.header/eoh/body, the MIME parts for
`mime.parts` (lengths, content headers, MD5 of the encoded and of the decoded body) and the
URIs of decoded text parts for `uri.found`.

Work per chunk is linear in the chunk. Bounded state: at most MAX_DEPTH nested boundaries,
MAX_TEXT bytes of decoded text per part kept for URI extraction, a partial line of at most
the longest line seen.
"""
import binascii
import hashlib
import re

HEADER, EOH, BODY = 0, 1, 2
MAX_DEPTH = 64
MAX_TEXT = 1 << 20

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.I)
_URI = re.compile(rb"""(?:\b(?:https?|ftp)://|\bmailto:|\bwww\.)[^\s<>"'()\[\]{}\\^`|]+""", re.I)


cdef class _Part:
    """One MIME part being read: its header fields, then its body."""
    cdef public object md5_encoded, md5_decoded, content_type, transfer_encoding, boundary
    cdef public long long header_length, body_length
    cdef public bint in_headers, is_text, is_message
    cdef public object decoder_carry, text, pending

    def __init__(self, bint in_headers):
        self.md5_encoded = hashlib.md5()
        self.md5_decoded = hashlib.md5()
        self.content_type = None
        self.transfer_encoding = None
        self.boundary = None
        self.header_length = 0
        self.body_length = 0
        self.in_headers = in_headers
        self.is_text = True
        self.is_message = False
        self.decoder_carry = b""
        self.text = bytearray()
        self.pending = None


cdef class MessageScanner:
    cdef public list parts, uris
    cdef public long long length, eoh_offset
    cdef bint body_lines, top_headers
    cdef object carry, header
    cdef list boundaries      # open multipart boundaries, innermost last: (b"--B", b"--B--")
    cdef _Part part
    cdef int part_number
    cdef set seen_uris

    def __init__(self, body_lines=False):
        self.body_lines = body_lines
        self.parts = []
        self.uris = []
        self.length = 0
        self.eoh_offset = 0
        self.top_headers = True
        self.carry = b""
        self.header = None
        self.boundaries = []
        self.part = _Part(True)
        self.part_number = 0
        self.seen_uris = set()

    # -- feeding -------------------------------------------------------------------------
    def feed(self, chunk):
        events = []
        self.length += len(chunk)
        if self.carry:
            chunk = self.carry + chunk
            self.carry = b""
        if not self.top_headers and not self.boundaries and not self.body_lines and not self.part.is_message:
            self._body_bytes(self.part, chunk)  # plain body: no need to look at lines
            return events
        cdef Py_ssize_t start = 0, end, size = len(chunk)
        while start < size:
            end = chunk.find(b"\r\n", start)
            if end < 0:
                self.carry = chunk[start:]
                break
            self._line(chunk[start:end], events)
            start = end + 2
        return events

    def finish(self):
        events = []
        if self.carry:
            self._line(self.carry, events, False)
            self.carry = b""
        if self.top_headers:
            self._end_top_headers(events)
        self._close_part()
        return events

    # -- lines ---------------------------------------------------------------------------
    cdef void _line(self, bytes line, list events, bint has_crlf=True):
        cdef _Part part = self.part
        if self.top_headers:
            self._top_header_line(line, events, has_crlf)
            return
        if self.body_lines:
            events.append((BODY, line))
        if self.boundaries and line[:2] == b"--" and self._boundary(line):
            return
        if part.in_headers:
            self._part_header_line(part, line, has_crlf)
        else:
            self._body_bytes(part, line + b"\r\n" if has_crlf else line)

    cdef void _top_header_line(self, bytes line, list events, bint has_crlf):
        cdef _Part part = self.part
        part.header_length += len(line) + (2 if has_crlf else 0)
        if line[:1] in (b" ", b"\t") and self.header is not None:
            self.header += b"\r\n" + line
            return
        if self.header is not None:
            events.append((HEADER, self.header))
            self._note_header(part, self.header)
            self.header = None
        if line == b"" and has_crlf:
            self._end_top_headers(events)
            self.eoh_offset = part.header_length
            return
        self.header = line

    cdef void _end_top_headers(self, list events):
        cdef _Part part = self.part
        if self.header is not None:
            events.append((HEADER, self.header))
            self._note_header(part, self.header)
            self.header = None
        events.append((EOH, b""))
        self.top_headers = False
        self._start_body(part)

    cdef void _part_header_line(self, _Part part, bytes line, bint has_crlf):
        part.header_length += len(line) + (2 if has_crlf else 0)
        if line[:1] in (b" ", b"\t") and part.pending is not None:
            part.pending += b" " + line.strip()
            return
        if part.pending is not None:
            self._note_header(part, part.pending)
            part.pending = None
        if line == b"":
            part.in_headers = False
            self._start_body(part)
            return
        part.pending = line

    cdef void _note_header(self, _Part part, bytes field):
        """Remember the content headers of a part (unfolded whole lines)."""
        name = field[:26].lower()
        if name.startswith(b"content-type:"):
            part.content_type = b" ".join(field.replace(b"\r\n", b" ").split())
        elif name.startswith(b"content-transfer-encoding:"):
            part.transfer_encoding = b" ".join(field.replace(b"\r\n", b" ").split())

    cdef void _start_body(self, _Part part):
        kind = b""
        if part.content_type is not None:
            kind = part.content_type[13:].strip().split(b";")[0].strip().lower()
        part.is_text = kind == b"" or kind.startswith(b"text/") or kind.startswith(b"multipart/")
        if kind.startswith(b"multipart/") and len(self.boundaries) < MAX_DEPTH:
            found = _BOUNDARY.search(part.content_type)
            if found:
                marker = b"--" + (found.group(1) if found.group(1) is not None else found.group(2))
                self.boundaries.append((marker, marker + b"--"))
        part.is_message = kind == b"message/rfc822"

    cdef bint _boundary(self, bytes line):
        """A boundary line of an open multipart closes the current part."""
        stripped = line.rstrip(b" \t")
        cdef int depth
        for depth in range(len(self.boundaries) - 1, -1, -1):
            opening, closing = self.boundaries[depth]
            if stripped == opening or stripped == closing:
                self._close_part()
                del self.boundaries[depth + (1 if stripped == opening else 0):]
                # after a closing boundary comes the epilogue: a part without headers
                self.part = _Part(stripped == opening)
                if stripped == closing:
                    self._start_body(self.part)
                self.part.header_length = 0
                return True
        return False

    # -- bodies --------------------------------------------------------------------------
    cdef void _body_bytes(self, _Part part, bytes data):
        if part.is_message:
            # message/rfc822: the embedded message's headers start a new part at once
            self._close_part()
            self.part = _Part(True)
            self._part_header_line(self.part, data.rstrip(b"\r\n"), data.endswith(b"\r\n"))
            return
        part.body_length += len(data)
        part.md5_encoded.update(data)
        decoded = self._decode(part, data)
        part.md5_decoded.update(decoded)
        if part.is_text and len(part.text) < MAX_TEXT:
            part.text += decoded[:MAX_TEXT - len(part.text)]

    cdef bytes _decode(self, _Part part, bytes data):
        encoding = part.transfer_encoding
        if encoding is None:
            return data
        encoding = encoding[26:].strip().lower()
        if encoding == b"base64":
            data = part.decoder_carry + b"".join(data.split())
            usable = len(data) - len(data) % 4
            part.decoder_carry = data[usable:]
            try:
                return binascii.a2b_base64(data[:usable])
            except binascii.Error:
                return b""
        if encoding == b"quoted-printable":
            data = part.decoder_carry + data
            cut = data.rfind(b"\n") + 1
            part.decoder_carry = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    cdef void _close_part(self):
        cdef _Part part = self.part
        if part.pending is not None:
            self._note_header(part, part.pending)
            part.pending = None
        if part.decoder_carry:
            tail = part.decoder_carry
            part.decoder_carry = b""
            if part.transfer_encoding is not None and b"base64" in part.transfer_encoding.lower():
                try:
                    tail = binascii.a2b_base64(tail + b"=" * (-len(tail) % 4))
                except binascii.Error:
                    tail = b""
            else:
                tail = binascii.a2b_qp(tail)
            part.md5_decoded.update(tail)
            if part.is_text:
                part.text += tail
        self.part_number += 1
        self.parts.append({
            "md5_encoded": part.md5_encoded.hexdigest().encode(),
            "md5_decoded": part.md5_decoded.hexdigest().encode(),
            "part_length": part.header_length + part.body_length,
            "body_length": part.body_length,
            "content_type": part.content_type,
            "content_transfer_encoding": part.transfer_encoding,
        })
        if part.is_text and part.text:
            self._find_uris(bytes(part.text), self.part_number)

    cdef void _find_uris(self, bytes text, int part_number):
        for found in _URI.finditer(text):
            raw = found.group(0).rstrip(b".,;:!?")
            if raw in self.seen_uris:
                continue
            self.seen_uris.add(raw)
            self.uris.append(_uri_fields(raw, part_number))


def _uri_fields(bytes raw, int part_number):
    """The uri.found fields of one URI (scheme default ports as the original)."""
    from urllib.parse import unquote_to_bytes, urlsplit
    text = raw.decode("latin-1")
    lowered = text.lower()
    if lowered.startswith("www."):
        text = "http://" + text
    elif lowered.startswith("mailto:"):
        local, _, host = text[7:].partition("@")
        return {"uri_raw": raw, "uri_decoded": unquote_to_bytes(raw), "scheme": b"mailto",
                "scheme_info": text[7:].encode("latin-1"), "user_info": local.encode("latin-1") or None,
                "host": host.split("?")[0].encode("latin-1") or None, "port": 25, "path": None,
                "query": None, "fragment": None, "mime_part": part_number}
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443, "ftp": 21}.get(parts.scheme.lower(), -1)
    host = parts.hostname

    def field(value):
        return value.encode("latin-1") if value else None

    return {"uri_raw": raw, "uri_decoded": unquote_to_bytes(raw), "scheme": field(parts.scheme.lower()),
            "scheme_info": field(text.split(":", 1)[1]), "user_info": field(parts.username),
            "host": field(host), "port": port, "path": field(parts.path), "query": field(parts.query),
            "fragment": field(parts.fragment), "mime_part": part_number}
