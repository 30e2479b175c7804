# cython: language_level=3
"""Frames the client's byte stream: command lines, then DATA.

Command mode: a line ends at LF (a CR before it is dropped). A line longer than `max_line`
octets is reported once as TOO_LONG and skipped up to its LF.

DATA mode: the message ends only at CRLF "." CRLF (the start of DATA counts as after a CRLF),
so no bare-CR/bare-LF variant can smuggle an end of data. Lines are split at CRLF; a leading
dot is removed (dot-unstuffing); a bare CR or LF inside a line becomes CRLF, so the message
handed on is the real message with CRLF line ends. Works across any chunking of the input.
"""
from libc.string cimport memchr, memcpy
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

TOO_LONG = object()


cdef inline Py_ssize_t _run_end(const unsigned char *base, Py_ssize_t i, Py_ssize_t size):
    """Where the run of line content from i ends: the next CR or LF, or size."""
    cdef const unsigned char *cr = <const unsigned char *>memchr(base + i, b'\r', size - i)
    cdef Py_ssize_t stop = (cr - base) if cr != NULL else size
    cdef const unsigned char *lf = <const unsigned char *>memchr(base + i, b'\n', stop - i)
    return (lf - base) if lf != NULL else stop


cdef class LineReader:
    cdef bytearray buf
    cdef Py_ssize_t pos
    cdef public Py_ssize_t max_line
    cdef public Py_ssize_t max_data_line
    cdef bint skipping                 # discarding the rest of an overlong command line
    # DATA state
    cdef bint line_start               # next byte starts a message line
    cdef Py_ssize_t line_length
    cdef public bint data_line_too_long
    cdef public long long data_bytes   # message bytes produced so far

    def __init__(self, Py_ssize_t max_line=1000, Py_ssize_t max_data_line=4096):
        self.buf = bytearray()
        self.pos = 0
        self.max_line = max_line
        self.max_data_line = max_data_line
        self.skipping = False
        self.start_data()

    def feed(self, data):
        if self.pos and self.pos == len(self.buf):
            self.buf = bytearray(data)
            self.pos = 0
        else:
            if self.pos > 65536:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += data

    def pending(self):
        """Number of bytes received but not consumed yet."""
        return len(self.buf) - self.pos

    def discard(self):
        self.buf = bytearray()
        self.pos = 0

    def take_rest(self):
        rest = bytes(self.buf[self.pos:])
        self.discard()
        return rest

    def next_line(self):
        """The next command line without its line end, TOO_LONG, or None if incomplete."""
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
        # (the buffer's own pointer: a typed memoryview costs more than the search, and
        # nothing here can resize the buffer while the pointer is in use)
        cdef const unsigned char *base = <const unsigned char *>PyByteArray_AS_STRING(self.buf)
        cdef const unsigned char *found
        cdef Py_ssize_t start, end, stop
        while True:
            if self.pos >= size:
                return None
            found = <const unsigned char *>memchr(base + self.pos, b'\n', size - self.pos)
            if found == NULL:
                if not self.skipping and size - self.pos > self.max_line:
                    self.skipping = True
                    self.pos = size
                    return TOO_LONG
                if self.skipping:
                    self.pos = size
                return None
            end = found - base
            start = self.pos
            self.pos = end + 1
            if self.skipping:
                self.skipping = False
                continue
            stop = end
            if stop > start and base[stop - 1] == b'\r':
                stop -= 1
            if end + 1 - start > self.max_line:
                return TOO_LONG
            return PyBytes_FromStringAndSize(<const char *>base + start, stop - start)

    # -- DATA ---------------------------------------------------------------------------
    def start_data(self):
        self.line_start = True
        self.line_length = 0
        self.data_line_too_long = False
        self.data_bytes = 0

    def read_data(self):
        """Consume buffered DATA input -> (message_bytes, done). When done, bytes after the
        terminating line stay buffered for command processing."""
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
        cdef Py_ssize_t i = self.pos
        cdef Py_ssize_t stop, n, o = 0
        cdef const unsigned char *base = <const unsigned char *>PyByteArray_AS_STRING(self.buf)
        cdef char *dst
        cdef bint done = False
        if i >= size:
            return b"", False
        # Each input byte gives at most two output bytes (a bare CR or LF becomes CRLF).
        out = PyByteArray_FromStringAndSize(NULL, 2 * (size - i))
        dst = PyByteArray_AS_STRING(out)
        while i < size:
            if self.line_start:
                # Need up to 3 bytes to tell ".\r\n" (end), "." + more (stuffed) apart.
                if base[i] == b'.':
                    if size - i < 2 or (base[i + 1] == b'\r' and size - i < 3):
                        break  # wait for more input
                    if base[i + 1] == b'\r' and base[i + 2] == b'\n':
                        i += 3
                        done = True
                        break
                    i += 1  # unstuff
                    if i >= size:
                        break
                self.line_start = False
            stop = _run_end(base, i, size)
            n = stop - i
            memcpy(dst + o, base + i, n)   # line content, copied at once
            o += n
            self.line_length += n
            if self.line_length > self.max_data_line:
                self.data_line_too_long = True
            i = stop
            if i >= size:
                break
            if base[i] == b'\r' and i + 1 >= size:
                break  # a CR at the very end: keep it until we see what follows
            dst[o] = b'\r'
            dst[o + 1] = b'\n'
            o += 2
            self.line_length = 0
            if base[i] == b'\r' and base[i + 1] == b'\n':
                i += 2
                self.line_start = True  # only a real CRLF starts a line (no smuggling)
            else:
                i += 1  # a bare CR or LF: a line break in the message, not a line start
        self.pos = i
        self.data_bytes += o
        return PyBytes_FromStringAndSize(dst, o), done


def wire_encode(block, bint at_line_start):
    """The inverse of DATA framing, for sending: -> (SMTP DATA bytes, at_line_start after).
    Every bare CR or LF becomes CRLF and a dot starting a line is doubled. `block` (bytes,
    bytearray or any other buffer) must not end in a CR whose LF may come in the next block
    (the caller holds such a CR back)."""
    cdef const unsigned char[:] view
    # bytes and bytearray are read through their own pointer (a typed memoryview costs
    # more than encoding a small message); other buffers through a memoryview
    if type(block) is bytes:
        return _wire_encode(<const unsigned char *>PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block),
                            at_line_start)
    if type(block) is bytearray:
        return _wire_encode(<const unsigned char *>PyByteArray_AS_STRING(block),
                            PyByteArray_GET_SIZE(block), at_line_start)
    view = block
    if view.shape[0] == 0:
        return b"", at_line_start
    return _wire_encode(&view[0], view.shape[0], at_line_start)


cdef tuple _wire_encode(const unsigned char *base, Py_ssize_t size, bint at_line_start):
    cdef Py_ssize_t i = 0, stop, n, o = 0
    cdef char *dst
    if size == 0:
        return b"", at_line_start
    out = PyByteArray_FromStringAndSize(NULL, 2 * size)   # ".\n" -> "..\r\n": at most double
    dst = PyByteArray_AS_STRING(out)
    while i < size:
        if at_line_start:
            if base[i] == b'.':
                dst[o] = b'.'
                o += 1
            at_line_start = False
        stop = _run_end(base, i, size)
        n = stop - i
        memcpy(dst + o, base + i, n)
        o += n
        i = stop
        if i >= size:
            break
        if base[i] == b'\r' and i + 1 < size and base[i + 1] == b'\n':
            i += 2
        else:
            i += 1
        dst[o] = b'\r'
        dst[o + 1] = b'\n'
        o += 2
        at_line_start = True
    return PyBytes_FromStringAndSize(dst, o), at_line_start
