"""A real spamd (Debian spamd + spamassassin) for tests, on a high 127.0.0.1 port, stopped by
PID. It uses the rules Debian ships in /usr/share/spamassassin (no sa-update), local tests
only (-L: no DNS/network rules), no user configs and no Bayes, so results are offline and
repeatable. GTUBE scores 1000."""
import atexit
import os
import shutil
import socket
import subprocess
import time

from .net import ServerProcess, free_port, wait_for_port

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
START_TIMEOUT = 90.0


def spamd_binary():
    return shutil.which("spamd") or ("/usr/sbin/spamd" if os.access("/usr/sbin/spamd", os.X_OK) else None)


class Spamd(ServerProcess):
    def __init__(self, folder):
        self.folder = str(folder)
        self.port = free_port()
        self.process = None
        self.log_path = os.path.join(self.folder, "spamd.log")

    def start(self):
        binary = spamd_binary()
        if binary is None:
            raise FileNotFoundError("spamd is not installed (Debian packages spamd, spamassassin)")
        home = os.path.join(self.folder, "home")
        os.makedirs(home, exist_ok=True)
        command = [binary, "--local", "--nouser-config",
                   "--listen=127.0.0.1:%d" % self.port, "--allowed-ips=127.0.0.1",
                   "--max-children=2", "--min-children=1", "--max-spare=2",
                   "--pidfile=%s" % os.path.join(self.folder, "spamd.pid"),
                   "--syslog=stderr", "--helper-home-dir=%s" % home,
                   "--cf=use_bayes 0", "--cf=bayes_auto_learn 0", "--cf=use_auto_whitelist 0"]
        if os.geteuid() == 0:
            command.append("--username=nobody")  # spamd will not run its children as root
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_for_port(self.port, timeout=START_TIMEOUT, process=self.process)
            self._wait_for_pong()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_for_pong(self):
        """The port opens before the first child is ready; PING until one answers."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    if b"PONG" in sock.recv(100):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("spamd on port %d does not answer PING" % self.port)

    @staticmethod
    def version():
        output = subprocess.run([spamd_binary(), "--version"], capture_output=True, text=True,
                                timeout=30).stdout
        return output.splitlines()[0].strip() if output else "spamd"


_shared = {}


def shared_spamd(tmp_path_factory):
    """One spamd for the whole test run (stopped at exit); None when spamd is not installed.
    A failed start is raised to every caller."""
    if "spamd" not in _shared:
        if spamd_binary() is None:
            _shared["spamd"] = None
        else:
            try:
                _shared["spamd"] = Spamd(tmp_path_factory.mktemp("spamd")).start()
                atexit.register(_shared["spamd"].stop)
            except Exception as exc:
                _shared["spamd"] = exc
    if isinstance(_shared["spamd"], Exception):
        raise _shared["spamd"]
    return _shared["spamd"]
