# cython: language_level=3
"""A connected non-blocking socket with buffered writes and callback-style reads: the
outbound half of smtpe/netclient.py (which connects and hands over the socket).

Compiled: a message forwarded over a pooled smart-host connection passes here about twenty
times (two writes, three read requests and their replies), and typed fields make each pass
a fraction of a Python method's cost. Knows of the loop only add_reader/remove_reader/
add_writer/remove_writer and what a Deadline needs.
"""
import socket

from .loop import Deadline
from .sockio cimport recv_some, send_some

UNREAD_LIMIT = 256 * 1024   # bytes buffered while no read is pending, before reading pauses

# what the pending read request waits for
cdef enum Want:
    NOTHING, LINE, EOF, SOME


cdef class Stream:
    """A connected non-blocking socket with buffered writes and callback-style reads.

    Read callbacks receive bytes, or None on EOF, error or timeout (then `self.error` says
    which). One read request at a time; writes may be queued at any moment. Once a socket
    error happened the stream is `broken`: later reads fail at once, writes are dropped, and
    every `on_drained` is still called (check `.broken`), so no writer or reader waits forever.
    """
    cdef public object loop
    cdef public object sock
    cdef public int fd
    cdef public object host
    cdef public object error
    cdef public bint broken
    cdef public bint closed
    cdef readonly bytearray _inbuf
    cdef bytearray _outbuf
    cdef Want _want              # the pending read request: what it waits for,
    cdef object _callback        # whom to give it,
    cdef Py_ssize_t _limit       # and at most how much (LINE, EOF)
    cdef bint _watching          # registered for reading: stays so between requests (a
                                 # register and unregister per reply cost two system calls)
    cdef object _deadline        # the pending read's timeout: one lazily kept timer for all
    cdef bint _eof
    cdef list _drain_waiters

    def __init__(self, loop, sock, host_label):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.host = host_label
        self.error = None
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._want = NOTHING
        self._callback = None
        self._limit = 0
        self._watching = False
        self._deadline = Deadline(loop, self._timed_out)
        self._eof = False
        self._drain_waiters = []
        self.broken = False
        self.closed = False

    # -- writing ---------------------------------------------------------------------------
    def write(self, data, on_drained=None):
        """Queue `data`; on_drained() once everything queued so far has left (or the stream
        broke). Every waiter is kept: a later write never cancels an earlier one's callback."""
        if self.closed:
            return
        if on_drained is not None:
            self._drain_waiters.append(on_drained)
        if self.broken:
            self._drained()
            return
        if self._outbuf:         # still draining: the writer callback sends it in turn
            self._outbuf += data
        elif data:
            self._send_now(data)
        elif self._drain_waiters:
            self._drained()

    cdef _send_now(self, data):
        """Nothing queued: send at once, queueing (and watching for writability) only what
        the socket does not take. Spares the copy through the buffer in the usual case."""
        cdef Py_ssize_t sent
        try:
            sent = max(send_some(self.fd, data), 0)
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            self._drained()
            return
        if sent < len(data):
            self._outbuf += memoryview(data)[sent:]
            self.loop.add_writer(self.fd, self._flush)
        elif self._drain_waiters:
            self._drained()

    def _flush(self):
        cdef Py_ssize_t sent
        try:
            while self._outbuf:
                sent = send_some(self.fd, self._outbuf)
                if sent < 0:
                    self.loop.add_writer(self.fd, self._flush)
                    return
                del self._outbuf[:sent]
        except OSError as exc:
            # The socket is dead: stop watching it for writability (an errored socket is
            # always "writable", which would spin the loop) and drop what cannot be sent.
            self.loop.remove_writer(self.fd)
            self._outbuf.clear()
            self._fail(exc.strerror or str(exc))
            self._drained()
            return
        self.loop.remove_writer(self.fd)
        self._drained()

    cdef _drained(self):
        waiters, self._drain_waiters = self._drain_waiters, []
        for callback in waiters:
            if self.closed:
                return
            callback()

    @property
    def pending_output(self):
        return len(self._outbuf)

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- reading ---------------------------------------------------------------------------
    def read_line(self, callback, timeout, Py_ssize_t limit=65536):
        """callback(line including its LF) or callback(None)."""
        self._request(LINE, callback, limit, timeout)

    def read_until_eof(self, callback, timeout, Py_ssize_t limit=1 << 30):
        """callback(all bytes up to EOF, at most `limit`) or callback(None) on error/timeout."""
        self._request(EOF, callback, limit, timeout)

    def read_some(self, callback, timeout):
        """callback(whatever bytes are available, b"" at EOF) or callback(None)."""
        self._request(SOME, callback, 0, timeout)

    def unread(self, data):
        """Put `data` back before the buffered input: a reader that took more than it used."""
        self._inbuf[:0] = data

    cdef _request(self, Want want, callback, Py_ssize_t limit, timeout):
        self._want = want
        self._callback = callback
        self._limit = limit
        if timeout:
            self._deadline.set(timeout)
        else:
            self._deadline.clear()
        if self._satisfy():
            return
        if self.broken:  # a write failed: no answer can come, and the socket may never wake us
            self._finish(None, self.error)
            return
        if not self._watching:
            self._watching = True
            self.loop.add_reader(self.fd, self._on_readable)

    def _timed_out(self):
        if self._want != NOTHING:
            self._finish(None, "timed out")

    cdef _unwatch(self):
        if self._watching:
            self._watching = False
            self.loop.remove_reader(self.fd)

    def _on_readable(self):
        try:
            data = recv_some(self.fd)
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        if data is None:
            return
        if data:
            if self._want == SOME and not self._inbuf:
                # the usual wait for a reply: hand over what arrived, no copy through the buffer
                self._finish(data)
                return
            self._inbuf += data
        else:
            self._eof = True
        if self._want == NOTHING:
            # Input nobody asked for yet stays buffered for the next request; but an EOF
            # would wake the loop for ever, and a talkative peer must not fill memory.
            if self._eof or len(self._inbuf) > UNREAD_LIMIT:
                self._unwatch()
            return
        self._satisfy()

    cdef bint _satisfy(self) except -1:
        """Complete the read request from the buffer if possible; True when done."""
        cdef Py_ssize_t end
        cdef bytearray buf = self._inbuf
        if self._want == NOTHING:
            return True
        if not buf and not self._eof:    # (the usual case of a new request: nothing to give)
            return False
        if self._want == LINE:
            end = buf.find(b"\n")
            if end < 0 and len(buf) < self._limit and not self._eof:
                return False
            if end < 0:
                if not self._eof:
                    end = self._limit - 1
                elif not buf:
                    return self._finish(None, "connection closed by peer")
                else:
                    end = len(buf) - 1
            result = bytes(buf[:end + 1])
            del buf[:end + 1]
        elif self._want == EOF:
            if len(buf) > self._limit:
                del buf[self._limit:]
                self._eof = True
            if not self._eof:
                return False
            result = bytes(buf)
            buf.clear()
        else:
            result = bytes(buf)
            buf.clear()
        return self._finish(result)

    cdef bint _finish(self, result, error=None) except -1:
        callback = self._callback
        self._want = NOTHING
        self._callback = None
        self._deadline.clear()
        if self._eof or self.broken:
            self._unwatch()
        if error:
            self.error = error
        callback(result)
        return True

    cdef _fail(self, reason):
        self.error = reason
        self.broken = True
        self._unwatch()     # an errored socket stays readable: it would spin the loop
        if self._want != NOTHING:
            self._finish(None, reason)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._deadline.cancel()
        self._unwatch()
        self.loop.remove_writer(self.fd)
        self._want = NOTHING
        self._callback = None
        self.sock.close()
