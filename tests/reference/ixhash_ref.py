"""Plain-Python statements of the iXhash routines (shared/spec/helpers.md §2).

Two statements of the digests, checked against each other by the property tests:
* `plugin_filtered(method, body)`: the public iXhash definition as the SpamAssassin iXhash2
  plugin writes it, a chain of whole-body regex substitutions (helpers.md §2.4). This is
  the oracle: smtpe's digests must equal md5 of this.
* `IxhashStream`: the same filter as a byte-at-a-time state machine that can be fed in
  chunks, the algorithm smtpe/_speedups/ixhash.pyx implements in Cython. Its plain-Python
  speed is the baseline of tests/perf/bench_text.py.

Conditions follow the original C and the API text (helpers.md §2.2), except that a NUL byte
is not a glyph for use_ixhash2: the API text lists the glyphs, NUL is not one of them, and
the original counted it only because strchr() finds the terminator of its glyph string.
"""
import hashlib
import re

SPACE = frozenset(b" \t\n\v\f\r")
GLYPHS = frozenset(b"<>()|@*'!?,")
BLOCK = 100                      # the plugin's "step one" squeezes repeats of 100-byte blocks


def is_print(byte):
    return 0x20 <= byte <= 0x7E


def is_graph(byte):
    return 0x21 <= byte <= 0x7E


def is_cntrl(byte):
    return byte < 0x20 or byte == 0x7F


def is_alnum(byte):
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


# -- conditions ---------------------------------------------------------------------------
def count_lf(body):
    return sum(1 for byte in body if byte == 0x0A)


def count_space_tab(body):
    return sum(1 for byte in body if byte in (0x20, 0x09))


def count_glyphs(body):
    """Glyph bytes, plus each ':' immediately followed by '/'."""
    count = 0
    for at, byte in enumerate(body):
        if byte in GLYPHS or (byte == 0x3A and body[at + 1:at + 2] == b"/"):
            count += 1
    return count


def use_ixhash1(body):
    return count_lf(body) >= 2 and count_space_tab(body) >= 20


def use_ixhash2(body):
    return count_glyphs(body) >= 3


def use_ixhash3(body):
    return len(body) >= 8


# -- the plugin's definition (oracle) ---------------------------------------------------
_SPACE_CLASS = rb"[\t\n\x0b\x0c\r ]"
_PRINT_CLASS = rb"[\x20-\x7e]"
_GRAPH_CLASS = rb"[\x21-\x7e]"


def _squeeze_blocks(text, char_class):
    """Plugin step one: s/([[:class:]]{100})(?:\\1+)/$1/g."""
    return re.sub(rb"(" + char_class + rb"{100})(?:\1)+", rb"\1", text)


def _squeeze_bytes(text, char_class):
    """Plugin step two: s/([[:class:]])(?:\\1+)/$1/g."""
    return re.sub(rb"(" + char_class + rb")\1+", rb"\1", text)


def plugin_filtered(method, body):
    """The bytes the iXhash2 plugin hashes for `method` (1, 2 or 3)."""
    if method == 1:
        text = body.replace(b"\r\n", b"\n")
        text = _squeeze_blocks(text, _SPACE_CLASS)
        text = _squeeze_bytes(text, _SPACE_CLASS)
        return re.sub(_GRAPH_CLASS + b"+", b"", text)
    if method == 2:
        text = re.sub(rb"[\x00-\x1f\x7f0-9A-Za-z%&#;=]+", b"", body).replace(b"_", b".")
        text = _squeeze_blocks(text, _PRINT_CLASS)
        return _squeeze_bytes(text, _PRINT_CLASS)
    if method == 3:
        text = re.sub(rb"[\x00-\x1f\x7f =]+", b"", body)
        text = _squeeze_blocks(text, _PRINT_CLASS)
        return _squeeze_bytes(text, _GRAPH_CLASS)
    raise ValueError("method must be 1, 2 or 3")


def plugin_digest(method, body):
    return hashlib.md5(plugin_filtered(method, body)).hexdigest()


# -- the streaming statement --------------------------------------------------------------
class IxhashStream:
    """The iXhash filter of one method over a body given in chunks.

    Stages, each fed by the one before: (A) drop or map single bytes (method 1 also turns
    CRLF into LF), (B) squeeze repeats of a 100-byte block of the method's class, (C)
    squeeze runs of one repeated byte of the method's class, (D) method 1 drops graph
    bytes. Stage B needs up to 200 bytes of look-ahead, so output lags input until finish().
    """

    def __init__(self, method):
        if method not in (1, 2, 3):
            raise ValueError("method must be 1, 2 or 3")
        self.method = method
        self.block_class = (lambda b: b in SPACE) if method == 1 else is_print
        self.squeeze_class = {1: lambda b: b in SPACE, 2: is_print, 3: is_graph}[method]
        self.pending_cr = False       # method 1: the last chunk ended in CR
        self.pending = bytearray()    # stage A output not yet through stage B
        self.repeated_block = None    # stage B: the block whose copies are being skipped
        self.class_end = 0            # stage B: pending[:class_end] are all in the class
        self.previous = None          # stage C: the last byte out of stage B
        self.out = bytearray()

    def feed(self, data):
        self._stage_a(data)
        self._stage_b(final=False)
        return self._take_output()

    def finish(self):
        if self.pending_cr:
            self.pending_cr = False
            self.pending.append(0x0D)
        self._stage_b(final=True)
        return self._take_output()

    def _take_output(self):
        out, self.out = bytes(self.out), bytearray()
        return out

    def _stage_a(self, data):
        method = self.method
        for at, byte in enumerate(data):
            if method == 1:
                if self.pending_cr:
                    self.pending_cr = False
                    if byte != 0x0A:
                        self.pending.append(0x0D)
                if byte == 0x0D:
                    if at + 1 == len(data):
                        self.pending_cr = True   # decided by the next chunk's first byte
                        continue
                    if data[at + 1] == 0x0A:
                        continue
                self.pending.append(byte)
            elif method == 2:
                if not (is_cntrl(byte) or is_alnum(byte) or byte in b"%&#;="):
                    self.pending.append(0x2E if byte == 0x5F else byte)
            elif not (is_cntrl(byte) or byte in SPACE or byte == 0x3D):
                self.pending.append(byte)

    def _stage_b(self, final):
        text, at = self.pending, 0
        end = self.class_end      # text[at:end] are known to be in the block class
        while True:
            if self.repeated_block is not None:
                if len(text) - at >= BLOCK and text[at:at + BLOCK] == self.repeated_block:
                    at += BLOCK
                    continue
                if len(text) - at < BLOCK and not final:
                    break
                self.repeated_block = None
            if at >= len(text):
                break
            end = max(end, at)
            while end < len(text) and end - at < BLOCK and self.block_class(text[end]):
                end += 1
            if end - at < BLOCK:
                if end == len(text):
                    if not final:
                        break                  # the run may reach 100 with more input
                    self._stage_c(text[at:])
                    at = len(text)
                else:
                    self._stage_c(text[at:end + 1])   # no block can start in here
                    at = end + 1
                continue
            if len(text) - at < 2 * BLOCK:
                if not final:
                    break                      # not enough to see a copy yet
                self._stage_c(text[at:])
                at = len(text)
                continue
            if text[at] == text[at + BLOCK] and text[at + BLOCK:at + 2 * BLOCK] == text[at:at + BLOCK]:
                self.repeated_block = bytes(text[at:at + BLOCK])
                self._stage_c(self.repeated_block)
                at += 2 * BLOCK
                continue
            self._stage_c(text[at:at + 1])
            at += 1
        del text[:at]
        self.class_end = max(end - at, 0)

    def _stage_c(self, chunk):
        for byte in chunk:
            if byte == self.previous and self.squeeze_class(byte):
                continue
            self.previous = byte
            if self.method == 1 and is_graph(byte):
                continue                       # stage D
            self.out.append(byte)


def stream_digest(method, chunks):
    stream = IxhashStream(method)
    digest = hashlib.md5()
    for chunk in chunks:
        digest.update(stream.feed(chunk))
    digest.update(stream.finish())
    return digest.hexdigest()
