"""A pycares channel driven by our loop: its sockets are watched with add_reader/add_writer
and its timeouts run as loop timers; no thread of ours (pycares keeps one idle thread of its
own, for destroying channels). Knows nothing of Lua.

`Resolver.query` sends a query we build (smtpe.dnswire) through c-ares' `ares_send` and
parses the raw response itself, so the rcode and the answer, authority and additional
sections all reach the caller (pycares' typed `query` keeps the records of successful
lookups only, without rcode, and knows fewer types). c-ares still does everything else:
servers and ports, retransmission, failover, TCP after truncation, ID and port
randomisation, its TTL-bound answer cache. Every query also has a deadline of our own
(dns-max-timeout): c-ares is asked again if it gives up earlier, and when the deadline
passes the query is reported with rcode TIMEOUT.

`reverse` (the PTR name of a client) and `resolve_host` (addresses of a host name, for
smtpe.netclient) are what the server itself needs; the Lua dns.* namespace uses `query`.
Every on_done is called later from the loop, never inside the call that started the work.
"""
import ipaddress
import itertools
import socket

import cffi
import pycares

from . import dnswire
from .hostlist import format_host, parse_host, split_hosts

# rcodes beyond the DNS ones, numbered as the original's (dns.rcode.ERRNO, dns.rcode.TIMEDOUT)
RCODE_ERRNO = 16
RCODE_TIMEOUT = 17

# c-ares status of a lookup that ended without a usable response -> the rcode we report
_STATUS_RCODES = {
    pycares.errno.ARES_EFORMERR: 1,
    pycares.errno.ARES_ESERVFAIL: 2,
    pycares.errno.ARES_ENOTFOUND: 3,
    pycares.errno.ARES_ENOTIMP: 4,
    pycares.errno.ARES_EREFUSED: 5,
    pycares.errno.ARES_ETIMEOUT: RCODE_TIMEOUT,
}
_GONE = (pycares.errno.ARES_ECANCELLED, pycares.errno.ARES_EDESTRUCTION)

DEFAULT_TRIES = 4
PTR_MEMO_SIZE = 4096     # client addresses whose PTR answer Resolver.reverse keeps
PTR_MEMO_TTL = 3600      # seconds at most (c-ares' own cache has the same ceiling)
MIN_TRY_SECONDS = 0.2


class Response:
    """The outcome of one query: `rcode` (DNS rcode, or RCODE_ERRNO / RCODE_TIMEOUT),
    `name`/`qtype`/`qclass` of the question as sent (the name with its trailing dot; a
    server echoes the case it was sent), `message` (dnswire.Message, None when no response was usable)
    and `error` (text, for logs)."""
    __slots__ = ("name", "qtype", "qclass", "rcode", "message", "error")

    def __init__(self, name, qtype, qclass, rcode, message=None, error=None):
        self.name = name
        self.qtype = qtype
        self.qclass = qclass
        self.rcode = rcode
        self.message = message
        self.error = error

    def __repr__(self):
        return "Response(%r, %d, %d, rcode=%d)" % (self.name, self.qtype, self.qclass, self.rcode)


class Query:
    """A query in flight; cancel() means its on_done is never called (c-ares has no way to
    drop one query: it finishes it and its answer is ignored)."""
    __slots__ = ("resolver", "message", "name", "qtype", "qclass", "on_done", "deadline",
                 "expires", "done")

    def __init__(self, resolver, message, name, qtype, qclass, on_done):
        self.resolver = resolver
        self.message = message
        self.name = name
        self.qtype = qtype
        self.qclass = qclass
        self.on_done = on_done
        self.deadline = None
        self.expires = None
        self.done = False

    def cancel(self):
        self._finish()

    def _finish(self):
        """-> on_done if the query was still open (now closed), else None."""
        if self.done:
            return None
        self.done = True
        self.resolver._queries.discard(self)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        on_done, self.on_done = self.on_done, None
        return on_done

    def _complete(self, response):
        on_done = self._finish()
        if on_done is not None:
            on_done(response)


class _AresSend:
    """c-ares' raw `ares_send()`, which pycares does not wrap: the bundled c-ares exports it,
    and the channel pointer is pycares' own. One C callback serves every query; its `arg`
    is a token naming the Python continuation."""

    def __init__(self):
        from pycares import _cares
        self.ffi = cffi.FFI()
        self.ffi.cdef("""
            typedef void (*smtpe_ares_callback)(void *arg, int status, int timeouts,
                                                unsigned char *abuf, int alen);
            void ares_send(void *channel, const unsigned char *qbuf, int qlen,
                           smtpe_ares_callback callback, void *arg);
        """)
        self.lib = self.ffi.dlopen(_cares.__file__)
        self.callback = self.ffi.callback("smtpe_ares_callback", self._answered)
        self.continuations = {}
        self.tokens = itertools.count(1)

    def send(self, channel, message, on_answer):
        """on_answer(status, raw_response_or_None); maybe called before send returns."""
        token = next(self.tokens)
        self.continuations[token] = on_answer
        capture = getattr(channel, "_capture_channel", None)
        if capture is None:  # pycares 4: no lock, the pointer is kept as is
            self._send(channel._channel[0], message, token)
            return
        with capture() as pointer:  # pycares 5: its lock held, its ares_channel_t *
            self._send(pointer, message, token)

    def _send(self, pointer, message, token):
        address = int(pycares._ffi.cast("uintptr_t", pointer))
        self.lib.ares_send(self.ffi.cast("void *", address), message, len(message),
                           self.callback, self.ffi.cast("void *", token))

    def _answered(self, arg, status, timeouts, abuf, alen):
        on_answer = self.continuations.pop(int(self.ffi.cast("uintptr_t", arg)), None)
        if on_answer is None or status in _GONE:
            return  # cancelled, or the channel is being destroyed (maybe on pycares' thread)
        data = bytes(self.ffi.buffer(abuf, alen)) if abuf != self.ffi.NULL and alen > 0 else None
        try:
            on_answer(status, data)
        except Exception:  # an exception must not unwind into C
            import traceback
            traceback.print_exc()


_ares_send = None


def _raw_sender():
    global _ares_send
    if _ares_send is None:
        _ares_send = _AresSend()
    return _ares_send


class Resolver:
    def __init__(self, loop, servers=None, max_timeout=45.0, tries=DEFAULT_TRIES, rotate=False,
                 ignore_tcp=False):
        self.loop = loop
        self.max_timeout = max(float(max_timeout), 0.05)
        self.closed = False
        self._readers = set()
        self._writers = set()
        self._timer = None
        self._timer_when = None
        self._in_flight = 0          # c-ares lookups not yet called back (ours may have expired)
        self._queries = set()        # Query objects not yet done
        self._ptr_memo = {}          # address text -> (expires, PTR target or None)
        # Per try, so that c-ares' doubling retries (t, 2t, 4t ...) add up to about the
        # budget, as the original's 3+6+12+24 = 45 s; our deadline enforces it exactly.
        per_try = max(self.max_timeout / (2 ** tries - 1), MIN_TRY_SECONDS)
        flags = pycares.ARES_FLAG_EDNS | (pycares.ARES_FLAG_IGNTC if ignore_tcp else 0)
        options = dict(sock_state_cb=self._socket_state, timeout=per_try, tries=tries,
                       rotate=rotate, flags=flags)
        if servers:
            options["servers"] = list(servers)
        self.channel = pycares.Channel(**options)
        self._sender = _raw_sender()

    @classmethod
    def from_options(cls, loop, options):
        """dns-servers (empty: /etc/resolv.conf), dns-max-timeout, dns-round-robin,
        dns-ignore-tcp. An unparsable server entry raises ValueError."""
        servers = [_server(entry) for entry in split_hosts(options.get("dns-servers") or "")]
        return cls(loop, servers or None, max_timeout=options.float("dns-max-timeout"),
                   rotate=options.flag("dns-round-robin"), ignore_tcp=options.flag("dns-ignore-tcp"))

    @property
    def pending(self):
        """Queries started and not yet done (reported, expired or cancelled)."""
        return len(self._queries)

    # -- queries ----------------------------------------------------------------------------
    def query(self, name, qtype, on_done, qclass=dnswire.CLASS_IN):
        """Send one query; on_done(Response) later, exactly once unless cancelled.
        Returns the Query. Raises dnswire.BadName for a name that cannot be sent."""
        message = dnswire.build_query(name, qtype, qclass)
        sent_name = dnswire.render_name(dnswire.name_labels(name))
        query = Query(self, message, sent_name, qtype, qclass, on_done)
        self._queries.add(query)
        if self.closed:
            self.loop.call_soon(query._complete, Response(sent_name, qtype, qclass, RCODE_ERRNO,
                                                          error="resolver closed"))
            return query
        query.expires = self.loop.time() + self.max_timeout
        query.deadline = self.loop.call_later(self.max_timeout, self._expired, query)
        self._send(query)
        return query

    def _send(self, query):
        self._in_flight += 1
        self._sender.send(self.channel, query.message,
                          lambda status, data: self._answered(query, status, data))
        self._schedule_timeout()

    def _answered(self, query, status, data):
        self._in_flight -= 1
        if query.done:
            return
        if status == pycares.errno.ARES_ETIMEOUT and query.expires - self.loop.time() > MIN_TRY_SECONDS:
            # c-ares gave up early: its adaptive timeouts (a few times the server's usual
            # latency) can spend all tries in a second or two, while a slow lookup (a DNSBL
            # the recursive server must resolve) deserves the whole dns-max-timeout
            self.loop.call_soon(self._resend, query)
            return
        response = _response(query, status, data)
        # later, from the loop: c-ares may call back inside ares_send (cached answers)
        self.loop.call_soon(query._complete, response)

    def _resend(self, query):
        if not query.done and not self.closed:
            self._send(query)

    def _expired(self, query):
        query.deadline = None
        query._complete(Response(query.name, query.qtype, query.qclass, RCODE_TIMEOUT,
                                 error="no answer within %gs" % self.max_timeout))

    # -- what the server needs ----------------------------------------------------------------
    def reverse(self, address, on_done):
        """on_done(first PTR target, lower-cased, without its trailing dot; or None).

        A client that comes back within the answer's TTL is answered from a memo of ours:
        c-ares' cache spares the network, this spares building the query and parsing the
        response again (about 60 us per connection). Bounded like a resolver's cache: the
        record's TTL (NXDOMAIN: the SOA's negative TTL; failures are never kept), at most
        PTR_MEMO_TTL seconds, PTR_MEMO_SIZE addresses."""
        # The memo is keyed by the text as given: looked up before the address is parsed,
        # which costs more than the lookup (another spelling of an address is another entry).
        key = address.decode("ascii", "replace") if isinstance(address, bytes) else address
        memo = self._ptr_memo.get(key)
        if memo is not None:
            if memo[0] > self.loop.time():
                self.loop.call_soon(on_done, memo[1])
                return None
            del self._ptr_memo[key]
        try:
            ip = ipaddress.ip_address(key)
        except ValueError:
            self.loop.call_soon(on_done, None)
            return None

        def answered(response):
            target, ttl = _ptr_target(response)
            if ttl > 0 and not self.closed:
                self._remember_ptr(key, target, ttl)
            on_done(target)
        return self.query(ip.reverse_pointer, dnswire.TYPE_PTR, answered)

    def _remember_ptr(self, key, target, ttl):
        memo = self._ptr_memo
        if len(memo) >= PTR_MEMO_SIZE:
            now = self.loop.time()
            for old in [k for k, (expires, _) in memo.items() if expires <= now]:
                del memo[old]
            if len(memo) >= PTR_MEMO_SIZE:      # all still valid: the oldest entry goes
                del memo[next(iter(memo))]
        memo[key] = (self.loop.time() + min(ttl, PTR_MEMO_TTL), target)

    def resolve_host(self, name, port, on_done):
        """on_done([addresses]) for a host name: A and AAAA (c-ares' getaddrinfo: the hosts
        file, then DNS with CNAMEs followed), IPv4 first; [] when nothing was found in time."""
        state = {"done": False, "timer": None}

        def finish(addresses):
            if state["done"]:
                return
            state["done"] = True
            if state["timer"] is not None:
                state["timer"].cancel()
            on_done(addresses)

        def answered(result, error):
            self._in_flight -= 1
            addresses = []
            if error is None and result is not None:
                found = [(node.family, node.addr[0]) for node in result.nodes]
                found.sort(key=lambda item: item[0] != socket.AF_INET)  # stable: IPv4 first
                addresses = [_text(address) for _, address in found]
            self.loop.call_soon(finish, list(dict.fromkeys(addresses)))

        if self.closed:
            self.loop.call_soon(finish, [])
            return
        state["timer"] = self.loop.call_later(self.max_timeout, finish, [])
        self._in_flight += 1
        try:
            self.channel.getaddrinfo(name, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                                     callback=answered)
        except (pycares.AresError, RuntimeError, ValueError, UnicodeError):
            self._in_flight -= 1
            self.loop.call_soon(finish, [])
            return
        self._schedule_timeout()

    # -- driving c-ares from the loop -----------------------------------------------------------
    def _socket_state(self, fd, readable, writable):
        if self.closed:
            return  # may be pycares' destroy thread: never touch the loop from there
        if readable and fd not in self._readers:
            self._readers.add(fd)
            self.loop.add_reader(fd, lambda: self._process(fd, pycares.ARES_SOCKET_BAD))
        elif not readable and fd in self._readers:
            self._readers.discard(fd)
            self.loop.remove_reader(fd)
        if writable and fd not in self._writers:
            self._writers.add(fd)
            self.loop.add_writer(fd, lambda: self._process(pycares.ARES_SOCKET_BAD, fd))
        elif not writable and fd in self._writers:
            self._writers.discard(fd)
            self.loop.remove_writer(fd)

    def _process(self, read_fd, write_fd):
        if self.closed:
            return
        self.channel.process_fd(read_fd, write_fd)
        self._schedule_timeout()

    def _schedule_timeout(self):
        """One loop timer for c-ares' next retransmission or timeout. A timer that fires
        early does no harm (c-ares finds nothing due), so an earlier one is kept."""
        if self.closed:
            return
        if self._in_flight <= 0:
            self._cancel_timer()
            return
        # the argument caps the answer, and makes it non-zero when nothing is pending
        delay = max(self.channel.timeout(self.max_timeout), 0.001)
        when = self.loop.time() + delay
        if self._timer is not None and self._timer_when <= when:
            return
        self._cancel_timer()
        self._timer_when = when
        self._timer = self.loop.call_later(delay, self._timed_out)

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = None

    def _timed_out(self):
        self._timer = None
        self._timer_when = None
        self._process(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)

    def close(self):
        """Stop watching c-ares' sockets and destroy the channel; open queries are reported
        with RCODE_ERRNO."""
        if self.closed:
            return
        self.channel.cancel()  # here, on the loop: pending callbacks run now, not on a thread
        self.closed = True
        for query in list(self._queries):
            self.loop.call_soon(query._complete, Response(query.name, query.qtype, query.qclass,
                                                          RCODE_ERRNO, error="resolver closed"))
        self._cancel_timer()
        for fd in self._readers:
            self.loop.remove_reader(fd)
        for fd in self._writers:
            self.loop.remove_writer(fd)
        self._readers.clear()
        self._writers.clear()
        self.channel.close()


def _server(entry):
    """A dns-servers entry -> c-ares' `ip:port` / `[ipv6]:port` form (c-ares takes addresses
    only: no host names, no unix sockets)."""
    host, port = parse_host(entry, 53)
    if port is None:
        raise ValueError("dns-servers: %r is not an IP address" % entry)
    ipaddress.ip_address(host)  # ValueError for a host name
    return format_host(host, port)


def _response(query, status, data):
    """A c-ares outcome -> Response. A parsable response decides the rcode itself; a lookup
    that ended without one maps c-ares' status."""
    message = None
    if data is not None:
        try:
            message = dnswire.parse_message(data)
        except dnswire.Malformed:
            message = None
    if message is not None and (status == 0 or message.rcode != 0):
        # The question as sent, not as echoed: c-ares' cache answers a query with the
        # response to an earlier one that differed in case only. A failed lookup's last
        # response (e.g. SERVFAIL from every server) has no records worth keeping, but its
        # rcode is the truth.
        return Response(query.name, query.qtype, query.qclass, message.rcode,
                        message if status == 0 else None)
    rcode = _STATUS_RCODES.get(status, RCODE_ERRNO)
    error = None if status == 0 else pycares.errno.strerror(status)
    return Response(query.name, query.qtype, query.qclass, rcode, error=error)


def _text(value):
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def get_resolver(loop, options):
    """The loop's resolver, created from options the first time it is needed."""
    resolver = getattr(loop, "resolver", None)
    if resolver is None:
        resolver = loop.resolver = Resolver.from_options(loop, options)
        if getattr(loop, "resolve_host", None) is None:
            loop.resolve_host = resolver.resolve_host
    return resolver


def _ptr_target(response):
    """-> (the first PTR target of a reverse lookup, lower-cased, without its trailing dot,
    or None; how many seconds that answer may be kept: 0 for a failure)."""
    message = response.message
    if message is None or response.rcode not in (0, 3):
        return None, 0
    for record in message.answer + message.authority + message.additional:
        if record.type == dnswire.TYPE_PTR and record.fields:
            target = record.fields["value"].decode("utf-8", "replace").lower()
            return (target[:-1] if target.endswith(".") else target), record.ttl
    for record in message.authority:      # NXDOMAIN or no PTR: kept as the SOA says (RFC 2308)
        if record.type == dnswire.TYPE_SOA and record.fields:
            return None, min(record.ttl, record.fields["minimum"])
    return None, 0
