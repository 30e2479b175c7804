"""Plain-Python statement of the message scanner (smtpe._speedups.scanner), written for
clarity, not speed: the whole message at once, line by line. Property tests hold the Cython
scanner to it on random messages and chunkings; tests/perf/bench_scanner.py compares speeds.

The rules are shared/spec/helpers.md §3 (MIME parts) and §4.3 (URIs in text), with smtpe's
deliberate differences (see smtpe/_speedups/scanner.pyx):
* boundaries are the `boundary=` parameters of the open multipart parts, not any `--x` line;
* body_length is the length of the part's encoded body;
* the decoded stream of the last part keeps its final line break;
* message/rfc822 with parameters is still an embedded message;
* a part whose headers reach the end of the message is one entry with an empty body.
URIs are reported once each (the first occurrence of each uri_raw, as uri.found keeps them).
"""
import hashlib
import re
from html.entities import name2codepoint

from smtpe import uri as urimod

HEADER, EOH, BODY = 0, 1, 2
MAX_DEPTH = 64              # open multipart boundaries kept; deeper ones are body text
MAX_TOKEN = 1024            # longest body token looked at as a URI
MAX_HEADER_KEPT = 8192      # longest Content-Type/-Transfer-Encoding line kept
MAX_LINE = 65536            # a header name must end (colon) within this many bytes
MAX_BOUNDARY = 200          # longest boundary parameter taken (RFC 2046: 70)
MAX_URIS = 5000             # distinct URIs reported
MAX_EVENT = 1 << 20         # longest header or body line an event carries (the rest is cut)
FOLD = (b" ", b"\t")
SPACE = b" \t\n\v\f\r"


# -- lines ----------------------------------------------------------------------------------
def lines(message):
    """(content, line break) pairs: lines end at LF, the break is CRLF or LF; the last line
    may have no break."""
    start = 0
    while start < len(message):
        end = message.find(b"\n", start)
        if end < 0:
            yield message[start:], b""
            return
        content_end = end - 1 if end > start and message[end - 1] == 0x0D else end
        yield message[start:content_end], message[content_end:end + 1]
        start = end + 1


# -- header events (hook.header / hook.eoh / hook.body) ---------------------------------------
def split_headers(message, body_lines=False):
    """(events, eoh_offset): a header continues while the next line starts with SP or HT
    (interior line breaks kept); the first empty line ends the headers; then, if asked, one
    event per body line. An event carries at most MAX_EVENT bytes."""
    events, eoh_offset = [], 0
    pending = None                       # list of raw lines (with breaks) of the header
    offset, in_headers = 0, True
    for content, brk in lines(message):
        offset += len(content) + len(brk)
        if not in_headers:
            if body_lines:
                events.append((BODY, content[:MAX_EVENT]))
            continue
        if pending is not None and content[:1] in FOLD:
            pending.append(content + brk)
            continue
        if pending is not None:
            events.append((HEADER, _without_final_break(b"".join(pending))[:MAX_EVENT]))
            pending = None
        if content == b"" and brk:
            events.append((EOH, b""))
            in_headers, eoh_offset = False, offset
            continue
        pending = [content + brk]
    if pending is not None:
        events.append((HEADER, _without_final_break(b"".join(pending))[:MAX_EVENT]))
    if in_headers:
        events.append((EOH, b""))
    return events, eoh_offset


def _without_final_break(field):
    if field.endswith(b"\n"):
        field = field[:-1]
        if field.endswith(b"\r"):
            field = field[:-1]
    return field


# -- decoders -------------------------------------------------------------------------------
B64_ALPHABET = {byte: value for value, byte in
                enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
HEX = b"0123456789abcdefABCDEF"


def base64_decode(data):
    """Bytes outside the alphabet are skipped; `xx=`/`xxx=` end the data; `=` at the start of
    a quantum ends it too; `=` after one character is ignored; a partial last quantum gives
    its complete bytes."""
    out, quantum = bytearray(), []
    for byte in data:
        if byte == 0x3D:
            if len(quantum) == 1:
                continue
            break
        if byte in B64_ALPHABET:
            quantum.append(B64_ALPHABET[byte])
            if len(quantum) == 4:
                out += _quantum_bytes(quantum)
                quantum = []
    if len(quantum) >= 2:
        out += _quantum_bytes(quantum)
    return bytes(out)


def _quantum_bytes(quantum):
    bits = 0
    for value in quantum:
        bits = bits << 6 | value
    bits <<= 6 * (4 - len(quantum))
    return bits.to_bytes(3, "big")[:len(quantum) - 1]


def qp_decode(data, at_boundary=False):
    """`=HH` (either case) is the byte; `=` + LF is a soft break and `=` + CR loses the CR;
    `=` + anything else stays literal. Trailing spaces are kept. At the end of the part an
    unfinished `=`/`=H` is kept, or dropped when the part ends at a boundary."""
    out, index, size = bytearray(), 0, len(data)
    while index < size:
        byte = data[index]
        index += 1
        if byte != 0x3D:
            out.append(byte)
            continue
        while index < size and data[index] == 0x0D:
            index += 1                       # `=` CR: the CR is dropped
        if index == size:
            if not at_boundary:
                out += b"="
            return bytes(out)
        first = data[index]
        index += 1
        if first == 0x0A:
            continue                         # soft line break
        if first not in HEX:
            out += bytes([0x3D, first])
            continue
        if index == size:
            if not at_boundary:
                out += bytes([0x3D, first])
            return bytes(out)
        second = data[index]
        index += 1
        if second in HEX:
            out.append(int(bytes([first, second]), 16))
        else:
            out += bytes([0x3D, first, second])
    return bytes(out)


def literal_decode(data, at_boundary=False):
    """Bytes as they are; a CR still held back when a boundary comes is dropped."""
    if at_boundary and data.endswith(b"\r"):
        return data[:-1]
    return data


# -- content headers ------------------------------------------------------------------------
def media_type(content_type):
    """`text/plain` of `Content-Type: Text/Plain; x=y` (lower case), b"" without a type."""
    value = content_type.split(b":", 1)[1]
    return value.split(b";", 1)[0].strip(SPACE).lower()


_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;"]+))', re.I)


def boundary_of(content_type):
    found = _BOUNDARY.search(content_type)
    if found is None:
        return None
    value = found.group(1) if found.group(1) is not None else found.group(2)
    if not value or len(value) > MAX_BOUNDARY:
        return None
    return value


def is_text(content_type):
    """Parts whose decoded body is searched for URIs."""
    if content_type is None:
        return True
    kind = media_type(content_type)
    if b"/" not in content_type.split(b":", 1)[1]:
        return True
    if kind.startswith(b"text/") or kind.startswith(b"multipart/"):
        return True
    lowered = content_type.lower()
    return kind.startswith(b"application/") and re.search(
        rb";.*name=.*\.(txt|htm)", lowered, re.S) is not None


def is_header_line(content, top_part):
    """A header line has a name of bytes other than space and controls, then a colon; the
    top part also accepts an mbox `From ` line."""
    if top_part and content.startswith(b"From "):
        return True
    colon = content.find(b":")
    if colon < 0 or colon >= MAX_LINE:
        return False
    return all(byte > 0x20 and byte != 0x7F or byte == 0x0D for byte in content[:colon])


# -- URIs in text ---------------------------------------------------------------------------
DELIMITERS = frozenset(b" \t\n\v\f\r\0\"<>{}\\^`")
ENTITIES = {name.encode(): code for name, code in name2codepoint.items() if code <= 255}
NBSP, SHY = 0xA0, 0xAD


def entity_value(name):
    """The byte of entity `name` (between & and ;), or None if it is not one."""
    if name[:2] == b"#x":
        digits = name[2:]
        ok = digits and all(byte in HEX for byte in digits)
        value = int(digits, 16) if ok else None
    elif name[:1] == b"#":
        digits = name[1:]
        value = int(digits) if digits.isdigit() else None
    else:
        value = ENTITIES.get(bytes(name))
    if value is None or not 0 < value <= 255:
        return None
    return value


def tokens(text):
    """The raw tokens of decoded text: runs of non-delimiters, CR ignored, HTML entities
    decoded at each `;`, `&nbsp;` a delimiter and `&shy;` nothing, Big5 full-width dots as
    dots, runs over MAX_TOKEN bytes thrown away."""
    found, token, too_long = [], bytearray(), False
    for byte in text:
        if byte == 0x0D:
            continue
        if byte in DELIMITERS:
            if token and not too_long:
                found.append(bytes(token))
            token, too_long = bytearray(), False
            continue
        if too_long:
            continue
        if token and token[-1] == 0xA1 and byte in b"CDO":
            token[-1] = 0x2E
            continue
        token.append(byte)
        if byte == 0x3B:
            amp = token.rfind(b"&")
            value = entity_value(bytes(token[amp + 1:-1])) if amp >= 0 else None
            if value == NBSP:
                del token[amp:]
                if token:
                    found.append(bytes(token))
                token = bytearray()
            elif value == SHY:
                del token[amp:]
            elif value is not None:
                token[amp:] = bytes([value])
        if len(token) > MAX_TOKEN:
            too_long = True
    if token and not too_long:
        found.append(bytes(token))
    return found


def uris_of_text(text, part_number):
    found = []
    for token in tokens(text):
        candidate = urimod.clean_token(token)
        if candidate and urimod.may_be_uri(candidate):
            fields = urimod.parse(candidate)
            if fields is not None:
                fields["mime_part"] = part_number
                found.append(fields)
    return found


# -- MIME parts -----------------------------------------------------------------------------
class Part:
    def __init__(self, top):
        self.top = top
        self.length = 0              # part_length so far
        self.in_body = False
        self.header_seen = False     # a complete header line: a blank line is a real EOH
        self.pending = None          # the header line being unfolded
        self.content_type = None
        self.transfer_encoding = None
        self.encoding = b"literal"
        self.rfc822 = False
        self.pushed = None           # index of the boundary this part opened
        self.held = b""              # line break held back (dropped before a boundary)
        self.encoded = bytearray()


class Scan:
    def __init__(self):
        self.parts, self.uris, self.boundaries = [], [], []
        self.uris_seen = set()              # each uri_raw is reported once, where first found
        self.part = Part(top=True)

    # headers
    def complete_header(self, part):
        line, part.pending = part.pending, None
        part.header_seen = True
        lowered = line.lower()
        if lowered.startswith(b"content-transfer-encoding:"):
            part.transfer_encoding = line[:MAX_HEADER_KEPT]
            if b"quoted-printable" in lowered:
                part.encoding = b"qp"
            elif b"base64" in lowered:
                part.encoding = b"base64"
        elif lowered.startswith(b"content-type:"):
            part.content_type = line[:MAX_HEADER_KEPT]
            kind = media_type(line)
            part.rfc822 = kind == b"message/rfc822"
            boundary = boundary_of(line[:MAX_HEADER_KEPT]) if kind.startswith(b"multipart/") else None
            if part.pushed is not None:
                del self.boundaries[part.pushed:]
                part.pushed = None
            if boundary is not None and len(self.boundaries) < MAX_DEPTH:
                part.pushed = len(self.boundaries)
                self.boundaries.append(boundary)

    def boundary_depth(self, content):
        """(index in the stack, closing?) when the line is a delimiter of an open multipart."""
        if not self.boundaries or not content.startswith(b"--"):
            return None
        text = content.rstrip(b" \t")
        for depth in range(len(self.boundaries) - 1, -1, -1):
            marker = b"--" + self.boundaries[depth]
            if text == marker:
                return depth, False
            if text == marker + b"--":
                return depth, True
        return None

    # parts
    def close_part(self, at_boundary):
        part = self.part
        if part.pending is not None:
            self.complete_header(part)
        if not at_boundary:
            part.encoded += part.held
        else:
            part.length -= len(part.held)
        encoded = bytes(part.encoded)
        if part.encoding == b"base64":
            decoded = base64_decode(encoded)
        elif part.encoding == b"qp":
            decoded = qp_decode(encoded, at_boundary)
        else:
            decoded = literal_decode(encoded, at_boundary)
        self.parts.append({
            "md5_encoded": hashlib.md5(encoded).hexdigest().encode(),
            "md5_decoded": hashlib.md5(decoded).hexdigest().encode(),
            "part_length": part.length, "body_length": len(encoded),
            "content_type": part.content_type, "content_transfer_encoding": part.transfer_encoding,
        })
        if part.in_body and is_text(part.content_type):
            for found in uris_of_text(decoded, len(self.parts)):
                if found["uri_raw"] not in self.uris_seen and len(self.uris) < MAX_URIS:
                    self.uris_seen.add(found["uri_raw"])
                    self.uris.append(found)

    def start_body(self, part):
        part.in_body = True
        part.held = b""

    def line(self, content, brk):
        part = self.part
        if not part.in_body and part.pending is not None and content[:1] not in FOLD:
            self.complete_header(part)
        delimiter = self.boundary_depth(content)
        if delimiter is not None:
            depth, closing = delimiter
            self.close_part(at_boundary=True)
            del self.boundaries[depth + (0 if closing else 1):]
            self.part = Part(top=False)
            return
        part.length += len(content) + len(brk)
        if part.in_body:
            part.encoded += part.held + content
            part.held = brk
            return
        if part.pending is not None:           # a folded continuation
            part.pending = (part.pending + b" " + content[1:])[:MAX_HEADER_KEPT]
            return
        if content == b"" and brk:
            real_end = part.header_seen
            self.start_body(part)
            if real_end and part.rfc822:      # the embedded message starts at once
                self.close_part(at_boundary=True)
                self.part = Part(top=False)
            return
        if is_header_line(content, part.top):
            part.pending = content[:MAX_HEADER_KEPT]
            return
        self.start_body(part)
        part.encoded += content
        part.held = brk

    def finish(self):
        part = self.part
        if part.in_body or part.length or part.pending is not None:
            self.close_part(at_boundary=False)


def scan(message, body_lines=False):
    """Everything the scanner reports for `message`: events, parts, uris, eoh_offset."""
    events, eoh_offset = split_headers(message, body_lines)
    state = Scan()
    for content, brk in lines(message):
        state.line(content, brk)
    state.finish()
    return {"events": events, "parts": state.parts, "uris": state.uris,
            "eoh_offset": eoh_offset, "length": len(message)}
