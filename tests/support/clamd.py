"""A real clamd (Debian clamav-daemon) for tests: own config and signature database in a tmp
folder, listening on a high 127.0.0.1 port and a unix socket, stopped by PID. No freshclam,
no system service: the database is two test signatures written here."""
import atexit
import os
import shutil
import socket
import subprocess
import time

from .net import ServerProcess, free_port, wait_for_port

# The EICAR anti-virus test file, assembled so this source file is not itself "infected".
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Smtpe-Test-Eicar"
START_TIMEOUT = 60.0


def clamd_binary():
    return shutil.which("clamd") or ("/usr/sbin/clamd" if os.access("/usr/sbin/clamd", os.X_OK) else None)


class Clamd(ServerProcess):
    def __init__(self, folder):
        self.folder = str(folder)
        self.port = free_port()
        self.socket_path = os.path.join(self.folder, "clamd.sock")
        self.process = None
        self.log_path = os.path.join(self.folder, "clamd.log")

    def _write_files(self):
        database = os.path.join(self.folder, "db")
        os.makedirs(database, exist_ok=True)
        # .ndb: the EICAR string anywhere in any file (a mail body included).
        with open(os.path.join(database, "smtpe-test.ndb"), "w") as handle:
            handle.write("%s:0:*:%s\n" % (SIGNATURE, EICAR.hex()))
        config = os.path.join(self.folder, "clamd.conf")
        with open(config, "w") as handle:
            handle.write("\n".join([
                "Foreground yes",
                "TCPAddr 127.0.0.1",
                "TCPSocket %d" % self.port,
                "LocalSocket %s" % self.socket_path,
                "DatabaseDirectory %s" % database,
                "LogFile %s" % self.log_path,
                "PidFile %s" % os.path.join(self.folder, "clamd.pid"),
                "MaxThreads 4",
                "SelfCheck 3600",
                "",
            ]))
        return config

    def start(self):
        binary = clamd_binary()
        if binary is None:
            raise FileNotFoundError("clamd is not installed (Debian package clamav-daemon)")
        config = self._write_files()
        output = open(os.path.join(self.folder, "clamd.out"), "wb")
        self.process = subprocess.Popen([binary, "--foreground", "-c", config], stdout=output,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        output.close()
        try:
            wait_for_port(self.port, timeout=START_TIMEOUT, process=self.process)
            self._wait_for_unix_socket()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_for_unix_socket(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(2)
                    sock.connect(self.socket_path)
                    sock.sendall(b"nPING\n")
                    if sock.recv(16).startswith(b"PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("clamd unix socket %s not answering" % self.socket_path)

    def version(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"nVERSION\n")
            return sock.recv(200).decode().strip()


_shared = {}


def shared_clamd(tmp_path_factory):
    """One clamd for the whole test run, whichever module asks first (stopped at exit);
    None when clamd is not installed. A failed start is raised to every caller."""
    if "clamd" not in _shared:
        if clamd_binary() is None:
            _shared["clamd"] = None
        else:
            try:
                _shared["clamd"] = Clamd(tmp_path_factory.mktemp("clamd")).start()
                atexit.register(_shared["clamd"].stop)
            except Exception as exc:
                _shared["clamd"] = exc
    if isinstance(_shared["clamd"], Exception):
        raise _shared["clamd"]
    return _shared["clamd"]
