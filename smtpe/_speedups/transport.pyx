# cython: language_level=3
"""A client socket on the Loop: buffered, coalesced writes and push-style reads.

Replies are queued and sent at the end of the loop's turn (one send for a pipelined group;
and the replies of all sessions served in a turn go out together, so their peers wake up
together instead of interrupting the turn one reply at a time). Reading stops while the
session is busy and has plenty of unprocessed input, so a client cannot make a worker buffer
without bound.

Compiled: every message passes here about twenty times (a read, a reply queued, flushed and
sent per command), and typed fields make each pass a fraction of a Python method's cost.
Knows of the loop only add_reader/remove_reader/add_writer/remove_writer/at_turn_end, and
of the session only data_received/eof_received/connection_failed.
"""
import errno
import socket

from .sockio cimport recv_some, send_some


cdef class ReadControl:
    """Push-style reading of file descriptor `fd` into a session, pausable; subclasses give
    `_on_readable` and the writing half."""
    cdef public object loop
    cdef public int fd
    cdef public object session
    cdef public bint closed
    cdef bint _reading

    def __init__(self, loop, int fd):
        self.loop = loop
        self.fd = fd
        self.session = None
        self._reading = False
        self.closed = False

    def start(self, session):
        self.session = session
        self.resume_reading()

    def resume_reading(self):
        if not self._reading and not self.closed:
            self._reading = True
            self.loop.add_reader(self.fd, self._on_readable)

    def pause_reading(self):
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.fd)


cdef class SocketTransport(ReadControl):
    cdef public object sock
    cdef list _out
    cdef bint _writing
    cdef bint _send_queued        # _send_out is due at the end of the loop's turn
    cdef list _drained

    def __init__(self, loop, sock):
        ReadControl.__init__(self, loop, sock.fileno())
        self.sock = sock
        self._out = []
        self._writing = False
        self._send_queued = False
        self._drained = []

    # -- reading ---------------------------------------------------------------------------
    def _on_readable(self):
        try:
            data = recv_some(self.fd)
        except OSError as exc:
            self.pause_reading()
            self.session.connection_failed(exc.errno or errno.EIO, exc.strerror or str(exc), 4)
            return
        if data is None:
            return
        if not data:
            self.pause_reading()
            self.session.eof_received()
            return
        self.session.data_received(data)

    # -- writing ---------------------------------------------------------------------------
    def write(self, bytes data):
        if not self.closed:
            self._out.append(data)

    def flush(self):
        """Send what is queued, at the end of this loop turn."""
        if not self._send_queued and not self._writing and self._out and not self.closed:
            self._send_queued = True
            self.loop.at_turn_end(self._send_out)

    def _send_out(self):
        cdef Py_ssize_t sent
        self._send_queued = False
        if self._writing or not self._out or self.closed:
            return
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        try:
            sent = max(send_some(self.fd, data), 0)
        except OSError as exc:
            self._out = []
            self.session.connection_failed(exc.errno or errno.EPIPE, exc.strerror or str(exc), 3)
            return
        if sent == len(data):
            self._out = []
            if self._drained:   # (rarely anyone waits for it)
                self._notify_drained(True)
            return
        self._out = [data[sent:]]
        self._writing = True
        self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self):
        self._writing = False
        self.loop.remove_writer(self.fd)
        self._send_out()

    def when_drained(self, callback):
        """callback(ok) once everything queued so far has been sent (ok False if it never will)."""
        if not self._out:
            callback(not self.closed)
        else:
            self._drained.append(callback)
            self.flush()

    def cancel_drained(self, callback):
        if callback in self._drained:
            self._drained.remove(callback)

    def _notify_drained(self, ok):
        callbacks, self._drained = self._drained, []
        for callback in callbacks:
            callback(ok)

    # -- closing -----------------------------------------------------------------------------
    def close(self):
        """Send what is queued (best effort, without blocking), then close."""
        if self.closed:
            return
        if self._out and not self._writing:
            try:
                send_some(self.fd, b"".join(self._out))
            except OSError:
                pass
        self.closed = True
        self.pause_reading()
        if self._writing:
            self.loop.remove_writer(self.fd)
        self._notify_drained(False)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
