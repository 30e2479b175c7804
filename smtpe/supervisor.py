"""Process start-up and the worker processes.

The script is loaded and hook.init run once, before the port is bound (a bad script never
takes the port). `workers=1` serves in this process; `workers=N` (0: one per CPU) forks N
workers that share the listening sockets and the rate-limit tables, each with its own event
loop and master Lua state. A worker that dies is replaced. TERM/INT are passed on (every
worker drains), HUP checks the script here (hook.init runs once) and then reloads every
worker, QUIT stops everything at once."""
import os
import signal
import sys
import time

from . import frozen
from .engine import Engine, ScriptError
from ._speedups.loop import Loop
from .ratelimit import SharedClientRates, SharedGlobalRate
from .server import SIGNALS, Worker, held_signals, hold_signals, open_listeners

RESPAWN_PAUSE = 1.0   # a worker that dies this soon after its start is restarted no faster


def serve(options, log):
    if options.flag("daemon") and frozen.must_start_copy():  # the one-file binary
        return frozen.start_copy(sys.argv[1:])
    if frozen.is_onefile():  # the bootloader process is our parent: go when it goes
        _die_with_parent(os.getppid())
    if not options.flag("test"):
        hold_signals()
    for name in ("script", "spool-dir"):  # a detached daemon runs in /
        if options.get(name):
            options.set(name, os.path.abspath(options.get(name)))
    source = read_script(options)
    Engine(options, Loop(), log, source=source).run_init()
    if options.flag("test"):
        from .testmode import run_test_session
        return run_test_session(options, log)
    listeners = open_listeners(options)
    if options.flag("daemon"):
        _detach()
    count = options.int("workers") or os.cpu_count() or 1
    log.info("smtpe started on port %d, %d worker(s), script %s" % (
        options.int("smtp-server-port"), count, options.get("script")))
    if count <= 1:
        Worker(options, log, listeners, script_source=source).serve()
    else:
        Supervisor(options, log, listeners, count, source).run()
    log.info("terminated")
    return 0


def read_script(options):
    """The script's bytes, read once: what was checked is what the workers load, even when
    the file is edited before a worker starts (or restarts) and no HUP was sent."""
    try:
        with open(options.get("script"), "rb") as handle:
            return handle.read()
    except (OSError, TypeError):
        return None  # the engine reports the missing file


class Supervisor:
    def __init__(self, options, log, listeners, count, source=None):
        self.options = options
        self.source = source       # the checked script, for workers started from now on
        self.log = log
        self.listeners = listeners
        self.count = count
        self.client_rates = SharedClientRates()
        self.global_rate = SharedGlobalRate()
        self.workers = {}          # pid -> start time
        self.signals = []
        self.stopping = False

    def run(self):
        for number in SIGNALS:
            signal.signal(number, lambda number, frame: self.signals.append(number))
        self.signals[:0] = held_signals()  # arrived during start-up
        for _ in range(self.count):
            self.spawn()
        while self.workers:
            while self.signals:
                self.handle(self.signals.pop(0))
            self.reap()
            if not self.stopping:
                while len(self.workers) < self.count:
                    self.spawn()
            time.sleep(0.1)
        return 0

    def spawn(self):
        supervisor = os.getpid()
        # Blocked across fork: a signal for the new worker that came before its own handlers
        # would otherwise run the supervisor's handler in the child, and be lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        pid = os.fork()
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        if pid == 0:
            code = 0
            try:
                hold_signals()  # until the worker's loop runs
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                _die_with_parent(supervisor)
                Worker(self.options, self.log, self.listeners, client_rates=self.client_rates,
                       global_rate=self.global_rate, init_on_reload=False,
                       script_source=self.source).serve()
            except BaseException as exc:  # the worker must never return into the supervisor
                self.log.error("worker %d failed: %s" % (os.getpid(), exc))
                code = 1
            os._exit(code)
        self.workers[pid] = time.monotonic()
        self.log.info("worker %d started" % pid)

    def reap(self):
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            started = self.workers.pop(pid, time.monotonic())
            if not self.stopping:
                self.log.error("worker %d ended (%s); starting another" % (pid, _describe(status)))
                if time.monotonic() - started < RESPAWN_PAUSE:
                    time.sleep(RESPAWN_PAUSE)
            elif status != 0:      # e.g. its watchdog ended a drain that something held up
                self.log.warn("worker %d ended (%s) while stopping" % (pid, _describe(status)))

    def handle(self, number):
        if number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.log.info("signal %d received: stopping %d worker(s)" % (number, len(self.workers)))
            self.stopping = True
            for listener in self.listeners:  # the workers close theirs: the port is released
                listener.close()
            self.tell_workers(signal.SIGQUIT if number == signal.SIGQUIT else signal.SIGTERM)
        elif number == signal.SIGHUP:
            source = read_script(self.options)
            try:
                Engine(self.options, Loop(), self.log, source=source).run_init()
            except ScriptError as exc:
                self.log.error("reload refused, workers keep the running script: %s" % exc)
                return
            self.source = source
            self.tell_workers(signal.SIGHUP)

    def tell_workers(self, number):
        for pid in list(self.workers):
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass


def _die_with_parent(parent):
    """Linux: have SIGTERM (a drain) sent to us when `parent` dies, even by SIGKILL (svc -k),
    instead of serving on as an orphan that holds the port the restarted daemon needs."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _describe(status):
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return "exit %d" % os.WEXITSTATUS(status)


def _detach():
    """+daemon: fork, new session, cwd /, stdio to /dev/null (logging goes to syslog)."""
    if frozen.is_copy():  # already in a session of its own (smtpe.frozen)
        frozen.copy_is_ready()
        return
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sys.stdout = sys.stderr = open(os.devnull, "w")
