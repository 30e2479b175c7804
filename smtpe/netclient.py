"""Outbound connections on the Loop: try each host of a list in turn, then talk in lines.

Used by the smart-host forwarder, smtp.sendfile/sendstring and the clamd, spamd and HTTP
services. Every wait has a deadline and every failure is reported through a callback, so a
silent or vanished peer can never hang a client. Knows nothing of SMTP or Lua.
"""
import errno
import functools
import ipaddress
import socket

from .hostlist import format_host, parse_host
from .loop import Deadline

UNREAD_LIMIT = 256 * 1024   # bytes buffered while no read is pending, before reading pauses


@functools.lru_cache(maxsize=256)   # the same few configured hosts, for every connection
def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def resolve_blocking(name, port, on_done):
    """Fallback name resolution (getaddrinfo). A worker with a DNS resolver replaces it by an
    asynchronous one through Loop.resolve_host."""
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        on_done([info[4][0] for info in infos])
    except OSError:
        on_done([])


class ConnectError(Exception):
    pass


class Stream:
    """A connected non-blocking socket with buffered writes and callback-style reads.

    Read callbacks receive bytes, or None on EOF, error or timeout (then `self.error` says
    which). One read request at a time; writes may be queued at any moment. Once a socket
    error happened the stream is `broken`: later reads fail at once, writes are dropped, and
    every `on_drained` is still called (check `.broken`), so no writer or reader waits forever.
    """

    def __init__(self, loop, sock, host_label):
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.host = host_label
        self.error = None
        self._inbuf = bytearray()
        self._outbuf = bytearray()
        self._reader = None  # (kind, callback, arg)
        self._watching = False  # registered for reading: stays so between requests (a
                                # register and unregister per reply cost two system calls)
        # the pending read's timeout: one lazily kept timer for all the requests of a stream
        self._deadline = Deadline(loop, self._timed_out)
        self._eof = False
        self._drain_waiters = []
        self.broken = False
        self.closed = False

    # -- connecting ------------------------------------------------------------------------
    @classmethod
    def connect(cls, loop, hosts, default_port, timeout, on_done):
        """Try `hosts` (entries as in hostlist) in order; on_done(stream) or on_done(None, reason).
        Returns a handle whose cancel() abandons the attempt (on_done is then never called)."""
        connector = _Connector(loop, list(hosts), default_port, timeout, on_done)
        connector.next_host()
        return connector

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

    def _send_now(self, data):
        """Nothing queued: send at once, queueing (and watching for writability) only what
        the socket does not take. Spares the copy through the buffer in the usual case."""
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
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
        try:
            while self._outbuf:
                sent = self.sock.send(self._outbuf)
                del self._outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            self.loop.add_writer(self.fd, self._flush)
            return
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

    def _drained(self):
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
    def read_line(self, callback, timeout, limit=65536):
        """callback(line including its LF) or callback(None)."""
        self._request(("line", callback, limit), timeout)

    def read_until_eof(self, callback, timeout, limit=1 << 30):
        """callback(all bytes up to EOF, at most `limit`) or callback(None) on error/timeout."""
        self._request(("eof", callback, limit), timeout)

    def read_some(self, callback, timeout):
        """callback(whatever bytes are available, b"" at EOF) or callback(None)."""
        self._request(("some", callback, None), timeout)

    def unread(self, data):
        """Put `data` back before the buffered input: a reader that took more than it used."""
        self._inbuf[:0] = data

    def _request(self, reader, timeout):
        self._reader = reader
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
        if self._reader is not None:
            self._finish(None, "timed out")

    def _unwatch(self):
        if self._watching:
            self._watching = False
            self.loop.remove_reader(self.fd)

    def _on_readable(self):
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc.strerror or str(exc))
            return
        reader = self._reader
        if data:
            if reader is not None and reader[0] == "some" and not self._inbuf:
                # the usual wait for a reply: hand over what arrived, no copy through the buffer
                self._finish(data)
                return
            self._inbuf += data
        else:
            self._eof = True
        if reader is None:
            # Input nobody asked for yet stays buffered for the next request; but an EOF
            # would wake the loop for ever, and a talkative peer must not fill memory.
            if self._eof or len(self._inbuf) > UNREAD_LIMIT:
                self._unwatch()
            return
        self._satisfy()

    def _satisfy(self):
        """Complete the read request from the buffer if possible; True when done."""
        if self._reader is None:
            return True
        buf = self._inbuf
        if not buf and not self._eof:    # (the usual case of a new request: nothing to give)
            return False
        kind, callback, limit = self._reader
        if kind == "line":
            end = buf.find(b"\n")
            if end < 0 and len(buf) < limit and not self._eof:
                return False
            if end < 0:
                if not self._eof:
                    end = limit - 1
                elif not buf:
                    return self._finish(None, "connection closed by peer")
                else:
                    end = len(buf) - 1
            result = bytes(buf[:end + 1])
            del buf[:end + 1]
        elif kind == "eof":
            if len(buf) > limit:
                del buf[limit:]
                self._eof = True
            if not self._eof:
                return False
            result = bytes(buf)
            buf.clear()
        else:
            result = bytes(buf)
            buf.clear()
        return self._finish(result)

    def _finish(self, result, error=None):
        callback = self._reader[1]
        self._reader = None
        self._deadline.clear()
        if self._eof or self.broken:
            self._unwatch()
        if error:
            self.error = error
        callback(result)
        return True

    def _fail(self, reason):
        self.error = reason
        self.broken = True
        self._unwatch()     # an errored socket stays readable: it would spin the loop
        if self._reader is not None:
            self._finish(None, reason)

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._deadline.cancel()
        self._unwatch()
        self.loop.remove_writer(self.fd)
        self._reader = None
        self.sock.close()


class _Connector:
    """Walks a host list: resolve a name, try each address with a connect timeout, next host."""

    def __init__(self, loop, hosts, default_port, timeout, on_done):
        self.loop = loop
        self.hosts = hosts
        self.default_port = default_port
        self.timeout = timeout
        self.on_done = on_done
        self.addresses = []
        self.label = None
        self.port = None
        self.last_error = "no host given"
        self.sock = None
        self.timer = None
        self.cancelled = False

    def cancel(self):
        """Abandon the attempt: close a socket being connected; on_done is never called."""
        self.cancelled = True
        self.hosts, self.addresses = [], []
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_writer(sock.fileno())
            sock.close()

    def next_host(self):
        if self.cancelled:
            return
        if self.addresses:
            self.try_address(self.addresses.pop(0))
            return
        if not self.hosts:
            self.on_done(None, self.last_error)
            return
        entry = self.hosts.pop(0)
        try:
            host, port = parse_host(entry, self.default_port)
        except ValueError as exc:
            self.last_error = str(exc)
            self.loop.call_soon(self.next_host)
            return
        self.label, self.port = format_host(host, port), port
        if port is None or _is_ip(host):
            self.addresses = [host]
            self.next_host()
            return
        resolve = getattr(self.loop, "resolve_host", None) or resolve_blocking
        resolve(host, port, self.resolved)

    def resolved(self, addresses):
        if self.cancelled:
            return
        if not addresses:
            self.last_error = "%s: host not found" % self.label
        self.addresses = list(dict.fromkeys(addresses))
        self.next_host()

    def try_address(self, address):
        if self.port is None:
            family, target = socket.AF_UNIX, address
        else:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            target = (address, self.port)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self.last_error = "%s: %s" % (self.label, exc.strerror)
            self.next_host()
            return
        sock.setblocking(False)
        code = sock.connect_ex(target)
        # EAGAIN is "in progress" only for TCP; on a unix socket it means the listen queue is
        # full, and that connect never completes.
        pending = (errno.EINPROGRESS,) if family == socket.AF_UNIX else (errno.EINPROGRESS, errno.EAGAIN)
        if code != 0 and code not in pending:
            sock.close()
            self.last_error = "%s: %s" % (self.label, errno.errorcode.get(code, code))
            self.loop.call_soon(self.next_host)
            return
        self.sock = sock
        self.timer = self.loop.call_later(self.timeout, self.connect_timed_out)
        self.loop.add_writer(sock.fileno(), self.connected)

    def connected(self):
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.timer.cancel()
        self.timer = None
        self.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            sock.close()
            self.last_error = "%s: %s" % (self.label, errno.errorcode.get(code, code))
            self.next_host()
            return
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.on_done(Stream(self.loop, sock, self.label))

    def connect_timed_out(self):
        sock, self.sock = self.sock, None
        self.timer = None
        if sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        sock.close()
        self.last_error = "%s: connect timed out" % self.label
        self.next_host()
