# cython: language_level=3
"""iXhash: the fuzzy body checksums of the NiX Spam project (shared/spec/helpers.md §2).

Digests follow the public iXhash definition, the SpamAssassin iXhash2 plugin (compatible
with iXhash 1.5.5), so they can be looked up in the public iXhash DNS lists. Where the
original C (libsnert) differs from the plugin, smtpe follows the plugin (helpers.md §2.4):
* method 2 hashes '.' for '_' (libsnert hashed '_');
* the plugin's "step one" applies: a block of 100 bytes of the method's class followed at
  once by copies of itself counts once (libsnert had no such step).

IxhashStream(method) filters one body fed in chunks: feed(chunk) returns the bytes ready
to be hashed, finish() the rest. Any split of a body into chunks gives the same bytes in
total as the whole body in one chunk (libsnert restarted its state on every call). The
stages, each fed by the one before:
  A. per byte: method 1 turns CRLF into LF; method 2 drops control, alphanumeric and
     "%&#;=" bytes and maps '_' to '.'; method 3 drops control, white space and '='.
  B. squeeze repeated 100-byte blocks of the class (1: white space, 2 and 3: printable);
     needs up to 200 bytes of look-ahead, kept in `pending` between chunks.
  C. squeeze a run of one repeated byte of the class (1: white space, 2: printable,
     3: graphic) to one byte.
  D. method 1 drops graphic bytes.

The conditions (use_ixhash1/2/3) follow the original and the API text (helpers.md §2.2),
except that NUL is not counted as a glyph (it was a strchr accident).
tests/reference/ixhash_ref.py states all of this in plain Python.
"""
import hashlib

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memcmp, memcpy, memmove

ctypedef unsigned char uchar

cdef enum:
    BLOCK = 100                # the plugin's step one works on 100-byte blocks

cdef uchar IS_SPACE[256]
cdef uchar IS_PRINT[256]
cdef uchar IS_GRAPH[256]
cdef uchar IS_GLYPH[256]
cdef short STAGE_A[4][256]     # method -> byte -> byte kept (maybe mapped), or -1 dropped


cdef void _init_tables():
    cdef int byte
    cdef bint cntrl, alnum
    for byte in range(256):
        IS_SPACE[byte] = byte == 0x20 or 0x09 <= byte <= 0x0D
        IS_PRINT[byte] = 0x20 <= byte <= 0x7E
        IS_GRAPH[byte] = 0x21 <= byte <= 0x7E
        IS_GLYPH[byte] = byte in b"<>()|@*'!?,"
        cntrl = byte < 0x20 or byte == 0x7F
        alnum = 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A
        STAGE_A[0][byte] = -1
        STAGE_A[1][byte] = byte
        STAGE_A[2][byte] = -1 if cntrl or alnum or byte in b"%&#;=" else byte
        STAGE_A[3][byte] = -1 if cntrl or IS_SPACE[byte] or byte == 0x3D else byte
    STAGE_A[2][ord("_")] = ord(".")


_init_tables()


@cython.final
cdef class IxhashStream:
    """The iXhash filter of one method (1, 2 or 3) over a body given in chunks."""
    cdef readonly int method
    cdef const uchar *block_class       # stage B
    cdef const uchar *squeeze_class     # stage C
    cdef bint drop_graph                # stage D
    cdef bint pending_cr                # method 1: the last chunk ended in CR
    cdef uchar *pending                 # stage A output not yet through stage B
    cdef Py_ssize_t pending_length, pending_capacity
    cdef Py_ssize_t class_end           # stage B: pending[at:class_end] are all in class
    cdef bint repeating                 # stage B: skipping copies of `block`
    cdef uchar block[BLOCK]
    cdef int previous                   # stage C: last byte out of stage B, -1 for none
    cdef uchar *out
    cdef Py_ssize_t out_length, out_capacity

    def __cinit__(self, int method):
        if method < 1 or method > 3:
            raise ValueError("iXhash method must be 1, 2 or 3")
        self.method = method
        if method == 1:
            self.block_class, self.squeeze_class = &IS_SPACE[0], &IS_SPACE[0]
        elif method == 2:
            self.block_class, self.squeeze_class = &IS_PRINT[0], &IS_PRINT[0]
        else:
            self.block_class, self.squeeze_class = &IS_PRINT[0], &IS_GRAPH[0]
        self.drop_graph = method == 1
        self._reset()

    def __dealloc__(self):
        PyMem_Free(self.pending)
        PyMem_Free(self.out)

    cdef void _reset(self) noexcept:
        self.pending_cr = False
        self.pending_length = 0
        self.class_end = 0
        self.repeating = False
        self.previous = -1
        self.out_length = 0

    def feed(self, const uchar[::1] data not None):
        """Filter the next chunk; returns the bytes ready to be hashed."""
        self._reserve(data.shape[0])
        self._stage_a(&data[0] if data.shape[0] else NULL, data.shape[0])
        self._stage_b(False)
        return self._take_output()

    def finish(self):
        """End of the body: the remaining bytes to hash. The stream is then fresh again."""
        self._reserve(1)
        if self.pending_cr:
            self.pending[self.pending_length] = 0x0D
            self.pending_length += 1
        self._stage_b(True)
        out = self._take_output()
        self._reset()
        return out

    cdef int _reserve(self, Py_ssize_t incoming) except -1:
        """Room for `incoming` more pending bytes, and for all the output they can make."""
        cdef Py_ssize_t need = self.pending_length + incoming + 1
        cdef void *grown
        if need > self.pending_capacity:
            grown = PyMem_Realloc(self.pending, need)
            if grown == NULL:
                raise MemoryError()
            self.pending, self.pending_capacity = <uchar *> grown, need
        if need > self.out_capacity:
            grown = PyMem_Realloc(self.out, need)
            if grown == NULL:
                raise MemoryError()
            self.out, self.out_capacity = <uchar *> grown, need
        return 0

    cdef bytes _take_output(self):
        out = PyBytes_FromStringAndSize(<char *> self.out, self.out_length)
        self.out_length = 0
        return out

    cdef void _stage_a(self, const uchar *data, Py_ssize_t size) noexcept:
        cdef const short *action = STAGE_A[self.method]
        cdef uchar *pending = self.pending
        cdef Py_ssize_t length = self.pending_length, at
        cdef uchar byte
        for at in range(size):
            byte = data[at]
            if self.method == 1:
                if self.pending_cr:
                    self.pending_cr = False
                    if byte != 0x0A:
                        pending[length] = 0x0D
                        length += 1
                if byte == 0x0D:
                    if at + 1 == size:
                        self.pending_cr = True    # the next chunk's first byte decides
                        continue
                    if data[at + 1] == 0x0A:
                        continue
            if action[byte] >= 0:
                pending[length] = <uchar> action[byte]
                length += 1
        self.pending_length = length

    cdef void _stage_b(self, bint final) noexcept:
        cdef uchar *text = self.pending
        cdef Py_ssize_t size = self.pending_length, at = 0
        cdef Py_ssize_t end = self.class_end
        cdef const uchar *in_class = self.block_class
        while True:
            if self.repeating:
                if size - at >= BLOCK and memcmp(text + at, self.block, BLOCK) == 0:
                    at += BLOCK
                    continue
                if size - at < BLOCK and not final:
                    break
                self.repeating = False
            if at >= size:
                break
            if end < at:
                end = at
            while end < size and end - at < BLOCK and in_class[text[end]]:
                end += 1
            if end - at < BLOCK:
                if end == size:
                    if not final:
                        break                     # the run may reach 100 with more input
                    self._stage_c(text + at, size - at)
                    at = size
                else:
                    self._stage_c(text + at, end + 1 - at)   # no block starts in here
                    at = end + 1
                continue
            if size - at < 2 * BLOCK:
                if not final:
                    break                         # not enough to see a copy yet
                self._stage_c(text + at, size - at)
                at = size
                continue
            if text[at] == text[at + BLOCK] and memcmp(text + at, text + at + BLOCK, BLOCK) == 0:
                memcpy(self.block, text + at, BLOCK)
                self._stage_c(self.block, BLOCK)
                self.repeating = True
                at += 2 * BLOCK
                continue
            self._stage_c(text + at, 1)
            at += 1
        memmove(text, text + at, size - at)
        self.pending_length = size - at
        self.class_end = end - at if end > at else 0

    cdef inline void _stage_c(self, const uchar *data, Py_ssize_t size) noexcept:
        """Stages C and D, into `out`."""
        cdef Py_ssize_t at
        cdef uchar byte
        for at in range(size):
            byte = data[at]
            if byte == self.previous and self.squeeze_class[byte]:
                continue
            self.previous = byte
            if self.drop_graph and IS_GRAPH[byte]:
                continue
            self.out[self.out_length] = byte
            self.out_length += 1


def ixhash_hexdigest(int method, const uchar[::1] body not None):
    """MD5 hex digest of one whole body by iXhash `method`."""
    stream = IxhashStream(method)
    digest = hashlib.md5(stream.feed(body))
    digest.update(stream.finish())
    return digest.hexdigest()


# -- conditions -----------------------------------------------------------------------------
def count_lf(const uchar[::1] body not None):
    cdef Py_ssize_t at, count = 0
    for at in range(body.shape[0]):
        count += body[at] == 0x0A
    return count


def count_space_tab(const uchar[::1] body not None):
    cdef Py_ssize_t at, count = 0
    for at in range(body.shape[0]):
        count += body[at] == 0x20 or body[at] == 0x09
    return count


def count_glyphs(const uchar[::1] body not None):
    """Bytes among < > ( ) | @ * ' ! ? , plus each ':' immediately followed by '/'."""
    cdef Py_ssize_t at, size = body.shape[0], count = 0
    for at in range(size):
        if IS_GLYPH[body[at]]:
            count += 1
        elif body[at] == 0x3A and at + 1 < size and body[at + 1] == 0x2F:
            count += 1
    return count


def use_ixhash1(body):
    """At least 2 line feeds and at least 20 spaces or tabs."""
    return count_lf(body) >= 2 and count_space_tab(body) >= 20


def use_ixhash2(body):
    """At least 3 glyphs (count_glyphs) anywhere in the body."""
    return count_glyphs(body) >= 3


def use_ixhash3(const uchar[::1] body not None):
    """At least 8 bytes."""
    return body.shape[0] >= 8
