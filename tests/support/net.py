"""Loopback helpers for tests: free ports, waiting for a listener, stopping by PID."""
import os
import signal
import socket
import subprocess
import time


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, host="127.0.0.1", timeout=20.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (process.returncode, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listening on %s:%d after %ss" % (host, port, timeout))


def stop_process(process, sig=signal.SIGTERM, timeout=10.0):
    """Stop a test-started process by PID; kill it if it does not go in time."""
    if process.poll() is not None:
        return process.returncode
    try:
        os.kill(process.pid, sig)
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(5)
    except ProcessLookupError:
        return process.wait(5)


class ThreadedListener:
    """Mixin for fake servers in the test process: accepts on `self._listener` in a thread
    until `self._stop` (a threading.Event) is set, and serves each connection with
    `self._connection(conn, number)` in a thread of its own (all kept in `self._threads`).
    The class sets `_listener`, `_stop`, `_threads` and `connections` up itself."""

    def _spawn(self, target, *args):
        import threading
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self):
        import select
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.1)
            if not ready:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._spawn(self._connection, conn, self.connections)


def wait_until(predicate, timeout=30, what="condition", interval=0.05):
    """Poll `predicate` until it gives a true value (returned) or `timeout` seconds pass
    (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class ServerProcess:
    """Mixin for a server the tests run as a child process (`self.process`, None when not
    running; the class's start() launches it): stopped by PID, and a context manager."""
    process = None

    def stop(self):
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
