"""Start the real smtpe daemon for integration tests: `python -m smtpe -daemon ...` or the
single binary when SMTPE_BIN names it. Stopped by PID; its stderr log is kept in a file."""
import os
import subprocess
import sys
import textwrap

from .net import free_port, stop_process, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def smtpe_command():
    binary = os.environ.get("SMTPE_BIN")
    return [binary] if binary else [sys.executable, "-m", "smtpe"]


class Daemon:
    def __init__(self, tmp_path, script, options=None, port=None):
        self.tmp_path = str(tmp_path)
        self.port = port or free_port()
        self.script_path = os.path.join(self.tmp_path, "policy.lua")
        with open(self.script_path, "w") as handle:
            handle.write(textwrap.dedent(script))
        self.spool_dir = os.path.join(self.tmp_path, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        values = {
            "script": self.script_path, "spool-dir": self.spool_dir,
            "smtp-server-address": "127.0.0.1", "smtp-server-port": str(self.port),
            "dns-servers": "127.0.0.1:9", "dns-max-timeout": "2", "file": "",
            "workers": "1", "verbose": "+warn +info",
        }
        values.update(options or {})
        self.args = ["-daemon"] + ["%s=%s" % item for item in values.items()]
        self.log_path = os.path.join(self.tmp_path, "smtpe.log")
        self.process = None

    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(smtpe_command() + self.args, cwd=self.tmp_path, env=env,
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        wait_for_port(self.port, timeout=timeout, process=self.process)
        return self

    def stop(self, sig=None):
        import signal
        if self.process is not None:
            code = stop_process(self.process, sig or signal.SIGTERM)
            self._log.close()
            return code
        return None

    @property
    def log(self):
        with open(self.log_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def spool_files(self):
        return sorted(os.listdir(self.spool_dir))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
