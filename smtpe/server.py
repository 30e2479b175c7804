"""A worker: listeners, accepting clients, rate limits, signals (TERM drains, HUP reloads the
script, QUIT exits), and the Session per connection. Knows no SMTP details."""
import errno
import gc
import math
import signal
import socket

from . import dns
from .engine import Engine, ScriptError
from .hostlist import split_hosts
from .ids import SessionIds
from ._speedups.loop import Loop
from .protocol import PathRules, Replies
from .ratelimit import ClientRates, GlobalRate
from .session import Session
from ._speedups.smtpclient import Timeouts, close_idle
from ._speedups.transport import SocketTransport

ACCEPTS_PER_WAKEUP = 64
STOP_GRACE = 10   # seconds a stop may be overdue (QUIT: at all) before the watchdog ends it
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_held = []


def _arm_watchdog(seconds):
    """SIGALRM (default action: end the process) in `seconds`, or earlier if already due."""
    earlier = signal.alarm(seconds)
    if earlier and earlier < seconds:
        signal.alarm(earlier)


def hold_signals():
    """Until a loop handles them, remember TERM/INT/HUP/QUIT instead of dying of them: a
    HUP soon after start (svc -h, say) must neither kill the daemon nor be lost."""
    del _held[:]
    for number in SIGNALS:
        signal.signal(number, lambda number, frame: _held.append(number))


def held_signals():
    """The signals held so far, oldest first (and forget them)."""
    taken = list(_held)
    del _held[:]
    return taken


def open_listeners(options):
    """Bind the listening sockets: smtp-server-address (list) or every address (IPv6 with
    IPv4 mapped when the host has IPv6, else IPv4)."""
    port = options.int("smtp-server-port")
    backlog = max(options.int("smtp-server-queue"), 1)
    addresses = split_hosts(options.get("smtp-server-address")) or [None]
    listeners = []
    for address in addresses:
        listeners.append(_listen(address, port, backlog))
    return listeners


def _listen(address, port, backlog):
    if address is None:
        try:
            return _bind(socket.AF_INET6, "::", port, backlog, dual_stack=True)
        except OSError:
            return _bind(socket.AF_INET, "0.0.0.0", port, backlog)
    address = address.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return _bind(family, address, port, backlog)


def _bind(family, address, port, backlog, dual_stack=False):
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(False)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class Worker:
    """One event loop serving clients with one master Lua state (two during a reload)."""

    def __init__(self, options, log, listeners=(), loop=None, client_rates=None, global_rate=None,
                 init_on_reload=True, script_source=None):
        self.options = options
        self.log = log
        self.loop = loop or Loop()
        self.listeners = list(listeners)
        self.loop.resolver = dns.Resolver.from_options(self.loop, options)
        self.loop.resolve_host = self.loop.resolver.resolve_host
        self.engine = Engine(options, self.loop, log, source=script_source)
        self.replies = Replies(self.engine.host_name, options.get("smtp-error-url"))
        self.helo_name = self.engine.host_name
        self.session_ids = SessionIds()
        self.path_rules = PathRules(
            angle_brackets=options.flag("rfc2821-angle-brackets"),
            local_length=options.flag("rfc2821-local-length"),
            domain_length=options.flag("rfc2821-domain-length"))
        self.smart_hosts = split_hosts(options.get("smtp-smart-host"))
        self.spool_memory = options.int("spool-memory") * 1024
        self.timeouts = Timeouts(
            connect=options.float("smtp-accept-timeout"),
            command=options.float("smtp-command-timeout"),
            dot=options.float("smtp-dot-timeout"))
        self.client_rates = client_rates or ClientRates()
        self.global_rate = global_rate or GlobalRate()
        self.init_on_reload = init_on_reload  # False under a supervisor, which runs hook.init
        self.sessions = set()
        self.test_mode = options.flag("test")
        self.accepting = False
        self.stopping = False
        self._drain_timer = None

    # -- start-up ------------------------------------------------------------------------
    def run_init(self):
        self.engine.run_init()

    def serve(self):
        """Run until stopped (TERM/INT drained, QUIT)."""
        self._install_signals()
        self.start_accepting()
        self.log.batch(self.loop)
        # What start-up built (modules, the Lua runtime, the script) lives as long as the
        # worker: out of the collector's sight, full collections stay cheap while serving.
        gc.freeze()
        try:
            self.loop.run()
        finally:
            self.log.unbatch()

    def start_accepting(self):
        if not self.accepting and not self.stopping:
            self.accepting = True
            for listener in self.listeners:
                self.loop.add_reader(listener.fileno(), lambda listener=listener: self._accept(listener))

    def stop_accepting(self):
        if self.accepting:
            self.accepting = False
            for listener in self.listeners:
                self.loop.remove_reader(listener.fileno())

    def close_listeners(self):
        """Draining: new clients are refused at once (they try again or another MX) instead
        of waiting in the listen queue until we exit."""
        self.stop_accepting()
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    def _accept(self, listener):
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.log.error("accept: %s; pausing for a second" % exc.strerror)
                    self._pause_accepting(1.0)
                    return
                continue
            self.start_session(sock, peer)
            limit = self.options.int("rate-global")
            if limit > 0 and self.global_rate.hit() >= limit:
                self.log.warn("%d connections exceeds %d per second" % (self.global_rate.count, limit))
                self._pause_accepting(1.0)
                return

    def _pause_accepting(self, seconds):
        self.stop_accepting()
        self.loop.call_later(seconds, self.start_accepting)

    def start_session(self, sock, peer):
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            local = sock.getsockname()
        except OSError:
            local = None
        session = Session(self, SocketTransport(self.loop, sock), peer, local)
        self.sessions.add(session)
        session.start()
        return session

    def session_closed(self, session):
        self.sessions.discard(session)
        if self.stopping and not self.sessions:
            self.loop.stop()

    def rate_client(self, address):
        return self.client_rates.hit(address)

    # -- signals -------------------------------------------------------------------------
    def _install_signals(self):
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._signal_socket = (reader, writer)
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for number in SIGNALS:
            signal.signal(number, self._signal_arrived)  # handled in the loop via the wakeup fd
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.loop.add_reader(reader.fileno(), self._on_signal)
        for number in held_signals():  # arrived during start-up
            self.loop.call_soon(self.handle_signal, number)

    def _signal_arrived(self, number, frame):
        """Python's handler: the loop handles the signal (wakeup fd). A stop also arms a
        watchdog, the alarm, whose default action ends the process once the stop is overdue:
        when something holds the loop up (a hook computing for minutes under a large
        lua-hook-cpu), the drain deadline, a timer of that loop, could not end it."""
        if number == signal.SIGQUIT:
            _arm_watchdog(STOP_GRACE)
        elif number in (signal.SIGTERM, signal.SIGINT):
            _arm_watchdog(math.ceil(self.options.float("smtp-drain-timeout")) + STOP_GRACE)

    def _on_signal(self):
        try:
            data = self._signal_socket[0].recv(64)
        except OSError:
            return
        for number in data:
            self.handle_signal(number)

    def handle_signal(self, number):
        if number in (signal.SIGTERM, signal.SIGINT):
            self.log.info("signal %d received: draining %d sessions" % (number, len(self.sessions)))
            self.drain()
        elif number == signal.SIGHUP:
            self.reload()
        elif number == signal.SIGQUIT:
            self.log.info("signal %d received: exiting now" % number)
            for session in list(self.sessions):
                session.abort()
            self.loop.stop()

    def drain(self):
        """Stop accepting; let sessions finish their transaction, then 421 them."""
        self.stopping = True
        self.stop_accepting()
        self.close_listeners()
        close_idle(self.loop)          # pooled smart-host connections: QUIT now
        for session in list(self.sessions):
            session.drain()
        if not self.sessions:
            self.loop.stop()
            return
        deadline = self.options.float("smtp-drain-timeout")
        self._drain_timer = self.loop.call_later(deadline, self._drain_expired)

    def _drain_expired(self):
        for session in list(self.sessions):
            session.abort()
        self.loop.call_later(1.0, self.loop.stop)

    def reload(self):
        """HUP: load the script into a new master state for new connections; sessions in
        progress finish on the old one. A script that fails to load keeps the old one."""
        try:
            engine = Engine(self.options, self.loop, self.log)
            if self.init_on_reload:
                engine.run_init()
        except ScriptError as exc:
            self.log.error("reload failed, keeping the running script: %s" % exc)
            return False
        self.engine = engine
        self.log.info("reloaded %s" % self.options.get("script"))
        return True
