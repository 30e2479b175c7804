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

from .engine import Engine, ScriptError
from .loop import Loop
from .ratelimit import SharedClientRates, SharedGlobalRate
from .server import Worker, open_listeners

RESPAWN_PAUSE = 1.0   # a worker that dies this soon after its start is restarted no faster


def serve(options, log):
    for name in ("script", "spool-dir"):  # a detached daemon runs in /
        if options.get(name):
            options.set(name, os.path.abspath(options.get(name)))
    Engine(options, Loop(), log).run_init()
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
        Worker(options, log, listeners).serve()
    else:
        Supervisor(options, log, listeners, count).run()
    log.info("terminated")
    return 0


class Supervisor:
    def __init__(self, options, log, listeners, count):
        self.options = options
        self.log = log
        self.listeners = listeners
        self.count = count
        self.client_rates = SharedClientRates()
        self.global_rate = SharedGlobalRate()
        self.workers = {}          # pid -> start time
        self.signals = []
        self.stopping = False

    def run(self):
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(number, lambda number, frame: self.signals.append(number))
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
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(number, signal.SIG_DFL)
                Worker(self.options, self.log, self.listeners, client_rates=self.client_rates,
                       global_rate=self.global_rate, init_on_reload=False).serve()
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

    def handle(self, number):
        if number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.log.info("signal %d received: stopping %d worker(s)" % (number, len(self.workers)))
            self.stopping = True
            self.tell_workers(signal.SIGQUIT if number == signal.SIGQUIT else signal.SIGTERM)
        elif number == signal.SIGHUP:
            try:
                Engine(self.options, Loop(), self.log).run_init()
            except ScriptError as exc:
                self.log.error("reload refused, workers keep the running script: %s" % exc)
                return
            self.tell_workers(signal.SIGHUP)

    def tell_workers(self, number):
        for pid in list(self.workers):
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass


def _describe(status):
    if os.WIFSIGNALED(status):
        return "signal %d" % os.WTERMSIG(status)
    return "exit %d" % os.WEXITSTATUS(status)


def _detach():
    """+daemon: fork, new session, cwd /, stdio to /dev/null (logging goes to syslog)."""
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
