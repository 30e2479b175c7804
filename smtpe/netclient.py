"""Outbound connections on the Loop: try each host of a list in turn, then talk in lines.

Used by the smart-host forwarder, smtp.sendfile/sendstring and the clamd, spamd and HTTP
services. Every wait has a deadline and every failure is reported through a callback, so a
silent or vanished peer can never hang a client. Knows nothing of SMTP or Lua.
"""
import errno
import functools
import ipaddress
import socket

from ._speedups.stream import UNREAD_LIMIT, Stream  # noqa: F401  (for the users of streams)
from .hostlist import format_host, parse_host


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


def connect(loop, hosts, default_port, timeout, on_done):
    """Try `hosts` (entries as in hostlist) in order; on_done(stream) or on_done(None, reason),
    stream a Stream. Returns a handle whose cancel() abandons the attempt (on_done is then
    never called)."""
    connector = _Connector(loop, list(hosts), default_port, timeout, on_done)
    connector.next_host()
    return connector


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
