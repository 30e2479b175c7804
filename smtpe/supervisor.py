"""Process start-up: check the script, bind the listeners, detach when asked, run the
worker(s). `workers=N` forks N workers sharing the listening sockets; a worker that dies is
replaced; hook.init runs once, in the parent, before any worker starts."""
import os
import sys

from .engine import Engine
from .loop import Loop
from .server import Worker, open_listeners


def serve(options, log):
    for name in ("script", "spool-dir"):  # a detached daemon runs in /
        if options.get(name):
            options.set(name, os.path.abspath(options.get(name)))
    # Load the script and run hook.init before binding, so a bad script never takes the port.
    Engine(options, Loop(), log).run_init()
    listeners = open_listeners(options)
    if options.flag("daemon"):
        _detach()
    log.info("smtpe started on port %d, script %s" % (options.int("smtp-server-port"), options.get("script")))
    worker = Worker(options, log, listeners)
    worker.serve()
    log.info("terminated")
    return 0


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
