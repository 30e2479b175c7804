# cython: language_level=3
"""recv and send straight on a non-blocking descriptor, for the compiled transports
(transport.pyx: the client's socket; stream.pyx: the smart host's).

Python's `socket.recv`/`send` parse their arguments from a format string and go through
the socket object's timeout machinery: about 1,000 instructions of a call that moves a
40-byte reply. Here a read allocates its bytes object at full size, receives into it and
shrinks it to what arrived, as CPython does (a read into a stack buffer copied out was
measured too: cheaper for short commands, dearer for a 100 KB message); a send takes the
bytes' own pointer. Behaviour matches the socket methods used before: None when the call
would block or was interrupted (the level-triggered loop calls again), OSError for any
other error, b"" at EOF; and MSG_NOSIGNAL, so a vanished peer is EPIPE even where SIGPIPE
is not ignored.
Inline functions of a .pxd are compiled into each module that cimports them: one text.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport errno
from libc.string cimport strerror
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF

cdef extern from *:
    """
    #include <errno.h>
    /* (in C: EWOULDBLOCK may equal EAGAIN, which a switch could not list twice) */
    static inline int smtpe_would_block(int number) {
        return number == EAGAIN || number == EWOULDBLOCK || number == EINTR;
    }
    """
    bint would_block "smtpe_would_block"(int number)

cdef extern from "<sys/socket.h>" nogil:
    ssize_t c_recv "recv"(int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send"(int fd, const void *buf, size_t n, int flags)
    enum: MSG_NOSIGNAL

# (on a bare pointer: the read's bytes object is resized in place, so it is not an `object`
# until it has its final size)
cdef extern from "Python.h":
    PyObject *new_bytes "PyBytes_FromStringAndSize"(const char *text, Py_ssize_t size) except NULL
    char *bytes_text "PyBytes_AS_STRING"(PyObject *data)
    int _PyBytes_Resize(PyObject **data, Py_ssize_t size) except -1

cdef enum:
    RECV_SIZE = 65536


cdef inline object _os_error(int number):
    return OSError(number, strerror(number).decode("utf-8", "replace"))


cdef inline object recv_some(int fd):
    """-> the bytes that arrived (b"" at EOF), or None when none are ready."""
    cdef PyObject *data = new_bytes(NULL, RECV_SIZE)
    cdef ssize_t got = c_recv(fd, bytes_text(data), RECV_SIZE, 0)
    cdef int number = errno
    if got < 0:
        Py_XDECREF(data)
        if would_block(number):
            return None
        raise _os_error(number)
    _PyBytes_Resize(&data, got)
    result = <object>data
    Py_XDECREF(data)
    return result


cdef inline Py_ssize_t send_some(int fd, object data) except -2:
    """Send what the socket takes of `data` (bytes or any buffer) -> bytes sent, or -1 when
    it would block now."""
    cdef Py_buffer view
    cdef ssize_t sent
    cdef int number
    if type(data) is bytes:
        sent = c_send(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), MSG_NOSIGNAL)
        number = errno
    else:
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        sent = c_send(fd, view.buf, view.len, MSG_NOSIGNAL)
        number = errno       # (before the release can touch errno)
        PyBuffer_Release(&view)
    if sent < 0:
        if would_block(number):
            return -1
        raise _os_error(number)
    return sent
