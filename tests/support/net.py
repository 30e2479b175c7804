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
