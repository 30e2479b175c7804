"""A pycares channel driven by our loop: its sockets are watched with add_reader/add_writer
and its timeouts run as loop timers; no thread. Knows nothing of Lua.

This module provides what the server itself needs (the PTR name of a client, the addresses
of a host name); the Lua dns.* namespace builds on the same channel."""
import ipaddress
import socket

import pycares

from .hostlist import parse_host, split_hosts


class Resolver:
    def __init__(self, loop, servers=None, timeout=45.0, tries=4, rotate=False):
        self.loop = loop
        self.timeout = timeout
        self._watched = {}
        self._timer = None
        per_try = max(timeout / (2 ** tries - 1), 0.2)   # 3+6+12+24 for 45 s, as the original
        options = dict(sock_state_cb=self._socket_state, timeout=per_try, tries=tries, rotate=rotate)
        if servers:
            options["servers"] = servers
        self.channel = pycares.Channel(**options)

    @classmethod
    def from_options(cls, loop, options):
        servers = []
        for entry in split_hosts(options.get("dns-servers")):
            host, port = parse_host(entry, 53)
            servers.append(host if port == 53 else ("[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)))
        return cls(loop, servers or None, timeout=options.float("dns-max-timeout"),
                   rotate=options.flag("dns-round-robin"))

    # -- driving c-ares from the loop ------------------------------------------------------
    def _socket_state(self, fd, readable, writable):
        if readable:
            self.loop.add_reader(fd, lambda fd=fd: self._process(fd, pycares.ARES_SOCKET_BAD))
        else:
            self.loop.remove_reader(fd)
        if writable:
            self.loop.add_writer(fd, lambda fd=fd: self._process(pycares.ARES_SOCKET_BAD, fd))
        else:
            self.loop.remove_writer(fd)
        if readable or writable:
            self._watched[fd] = True
        else:
            self._watched.pop(fd, None)
        self._arm_timer()

    def _process(self, read_fd, write_fd):
        self.channel.process_fd(read_fd, write_fd)
        self._arm_timer()

    def _arm_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watched:
            delay = self.channel.timeout()
            self._timer = self.loop.call_later(delay if delay else 0.5, self._on_timer)

    def _on_timer(self):
        self._timer = None
        self.channel.process_fd(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)
        self._arm_timer()

    def submit(self, name, query_type, callback, query_class=pycares.QUERY_CLASS_IN):
        """A raw pycares query; callback(result, error) as pycares gives it, always later
        (c-ares may refuse a query at once, e.g. when no server is usable)."""
        try:
            self.channel.query(name, query_type, query_class=query_class, callback=callback)
        except pycares.AresError as exc:
            self.loop.call_soon(callback, None, exc.args[0] if exc.args else pycares.errno.ARES_ESERVFAIL)
            return
        self._arm_timer()

    # -- what the server needs ---------------------------------------------------------------
    def reverse(self, address, on_done):
        """on_done(first PTR name without trailing dot, or None)."""
        try:
            name = ipaddress.ip_address(address).reverse_pointer
        except ValueError:
            on_done(None)
            return

        def answered(result, error):
            names = [] if error or result is None else [
                record.data.dname for record in result.answer if record.type == pycares.QUERY_TYPE_PTR]
            on_done(names[0].rstrip(".").lower() if names else None)

        self.submit(name, pycares.QUERY_TYPE_PTR, answered)

    def resolve_host(self, name, port, on_done):
        """on_done([addresses]): A and AAAA answers (CNAMEs followed by the server)."""
        found, pending = [], [2]

        def answered(result, error):
            if not error and result is not None:
                found.extend(record.data.addr for record in result.answer
                             if record.type in (pycares.QUERY_TYPE_A, pycares.QUERY_TYPE_AAAA))
            pending[0] -= 1
            if pending[0] == 0:
                on_done(found)

        self.submit(name, pycares.QUERY_TYPE_A, answered)
        self.submit(name, pycares.QUERY_TYPE_AAAA, answered)
