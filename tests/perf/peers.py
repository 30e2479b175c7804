"""The processes of a benchmark run: Postfix smtp-sink (the reference server and smtpe's
smart host), smtpe itself, the Postfix smtp-source load generator, and memory readings
from /proc. Every process is started here and stopped by its PID."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from tests.support.debian import extracted_package
from tests.support.net import ServerProcess, free_port, stop_process, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
SENDER = "sender@client.example.org"
RECIPIENT = "rcpt@example.org"
HELO = "client.example.org"


class ToolMissing(Exception):
    pass


def postfix_tool(name):
    """Path and environment of smtp-sink / smtp-source unpacked from the Debian package."""
    root = extracted_package("postfix")
    path = os.path.join(root, "usr", "sbin", name) if root else None
    if not path or not os.access(path, os.X_OK):
        raise ToolMissing("%s (Debian package postfix) is not available" % name)
    libraries = os.path.join(root, "usr", "lib", "postfix")
    env = dict(os.environ, LD_LIBRARY_PATH=libraries + os.pathsep + os.environ.get("LD_LIBRARY_PATH", ""))
    return path, env


def closed_udp_port():
    """A loopback UDP port nobody listens on: DNS queries sent there fail at once."""
    return free_port(socket.SOCK_DGRAM)


class Peer(ServerProcess):
    """A server process measured by the suite: `command` listening on 127.0.0.1:`port`."""
    command = env = None

    def start(self):
        self.process = subprocess.Popen(self.command, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        return self

    @property
    def pids(self):
        return [self.process.pid]


class Sink(Peer):
    """Postfix smtp-sink on 127.0.0.1, discarding every message (no dump files)."""

    def __init__(self, max_connections=512):
        self.port = free_port()
        path, self.env = postfix_tool("smtp-sink")
        user = ["-u", "root"] if os.geteuid() == 0 else []
        self.command = [path, *user, "-m", str(max_connections), "127.0.0.1:%d" % self.port, "1024"]


class Aiosmtpd(Peer):
    """aiosmtpd accepting and discarding everything (scripts/aiosmtpd_sink.py): a peer
    measured side by side with smtpe by `tests/perf/run --peers aiosmtpd`."""

    def __init__(self, folder=None, dns=None):
        try:
            import aiosmtpd  # noqa: F401
        except ImportError:
            raise ToolMissing("aiosmtpd is not installed (pip install aiosmtpd uvloop)")
        self.port = free_port()
        self.command = [sys.executable, os.path.join(HERE, "scripts", "aiosmtpd_sink.py"), str(self.port)]


HARAKA_VERSION = "3.3.4"   # the version the performance issue measured


class Haraka(Peer):
    """Haraka in one process, accepting mail for the benchmark's recipient domain and
    discarding it (queue/discard), logging warnings only: its best case as an accept-all
    server. It resolves each client's PTR, as smtpe does, against the suite's DNS server
    (`dns`, host:port) when there is one. Installed from npm into the tool cache on first use."""

    def __init__(self, folder, dns=None):
        self.port = free_port()
        haraka = _npm_package("Haraka", HARAKA_VERSION, "haraka")
        home = os.path.join(folder, "haraka-%d" % self.port)
        subprocess.run([haraka, "-i", home], check=True, capture_output=True, timeout=60)
        files = {
            "config/smtp.ini": "listen=127.0.0.1:%d\nnodes=0\n" % self.port,   # one process
            "config/plugins": "bench_dns\nrcpt_to.in_host_list\nqueue/discard\n",
            "config/host_list": RECIPIENT.split("@")[1] + "\n",
            "config/log.ini": "[main]\nlevel=warn\n",
            "config/me": "haraka.bench\n",
            # node's resolver asks /etc/resolv.conf, which this sandbox cannot reach
            "plugins/bench_dns.js": "exports.register = function () {\n"
                                    "    if (process.env.BENCH_DNS) require('dns').setServers([process.env.BENCH_DNS])\n}\n",
        }
        for name, text in files.items():
            with open(os.path.join(home, name), "w") as handle:
                handle.write(text)
        self.command = [haraka, "-c", home]
        self.env = dict(os.environ, YES_REALLY_DO_DISCARD="1", BENCH_DNS=dns or "")


def _npm_package(package, version, binary):
    """The path of `binary` of an npm package installed (once) into the tool cache."""
    from tests.support.debian import CACHE
    prefix = os.path.join(CACHE, "npm-%s-%s" % (package.lower(), version))
    path = os.path.join(prefix, "node_modules", ".bin", binary)
    if not os.access(path, os.X_OK):
        if not shutil.which("npm"):
            raise ToolMissing("%s needs node and npm (Debian nodejs, npm)" % package)
        os.makedirs(prefix, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
                               "%s@%s" % (package, version)], capture_output=True, timeout=600)
        if done.returncode != 0 or not os.access(path, os.X_OK):
            raise ToolMissing("npm install %s@%s failed: %s" % (package, version, done.stderr[-300:]))
    return path


PEERS = {"aiosmtpd": Aiosmtpd, "haraka": Haraka}


def smtpe_source():
    """The source tree smtpe runs from: this checkout, or $SMTPE_PERF_SOURCE (another
    checkout, to compare two versions under the same suite)."""
    return os.environ.get("SMTPE_PERF_SOURCE") or ROOT


class Smtpe:
    """The smtpe daemon in the foreground (`python -m smtpe -daemon ...`, or $SMTPE_BIN),
    its log in `folder`. `profile`: a file for cProfile statistics (see profile_smtpe.py).
    `wrapper`: a command that runs it (valgrind, see instructions.py)."""

    def __init__(self, folder, script, workers, smart_host=None, options=None, env=None, profile=None,
                 wrapper=()):
        self.folder = folder
        self.port = free_port()
        self.spool = os.path.join(folder, "spool")
        os.makedirs(self.spool, exist_ok=True)
        values = {
            "file": "", "script": script, "spool-dir": self.spool,
            "smtp-server-address": "127.0.0.1", "smtp-server-port": str(self.port),
            "workers": str(workers),
            # the PTR query of each connection fails at once (no resolver on this port),
            # unless the suite gives a DNS server (tests/perf/run starts nsd when it can)
            "dns-servers": "127.0.0.1:%d" % closed_udp_port(), "dns-max-timeout": "2",
            # the original's default of 100 connections per second would cap workload a
            "rate-global": "0",
        }
        if smart_host:
            values["smtp-smart-host"] = smart_host
        values.update(options or {})
        self.args = ["-daemon"] + ["%s=%s" % item for item in values.items()]
        self.env = dict(os.environ, PYTHONPATH=smtpe_source() + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.env.update(env or {})
        if profile:
            self.env["SMTPE_PROFILE"] = profile
            self.command = [sys.executable, os.path.join(HERE, "profile_smtpe.py")]
        elif os.environ.get("SMTPE_BIN"):
            self.command = [os.environ["SMTPE_BIN"]]
        else:
            self.command = [sys.executable, "-m", "smtpe"]
        self.command = list(wrapper) + self.command
        self.log_path = os.path.join(folder, "smtpe.log")
        self.process = None
        self._log = None

    def start(self, timeout=60):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command + self.args, cwd=self.folder, env=self.env,
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
        except BaseException:
            self.stop()   # (nothing would stop a daemon that never answered)
            raise
        return self

    @property
    def pids(self):
        """The daemon and its worker processes."""
        return [self.process.pid] + children(self.process.pid)

    def stop(self):
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=30)
            self.process = None
            self._log.close()

    def first_error(self):
        """The first error line of the log (a failing run usually says why there)."""
        try:
            with open(self.log_path, "rb") as handle:
                for line in handle:
                    if b" err: " in line:
                        return line.decode("utf-8", "replace").strip()
        except OSError:
            pass
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def children(pid):
    """PIDs whose parent is `pid` (the smtpe workers)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def rss_kb(pids):
    """Sum of VmRSS (kB) of the processes."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pids):
    """User plus system CPU time used so far by the processes (from /proc/<pid>/stat)."""
    ticks = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def smtp_source(port, sessions, messages, size, reuse, timeout):
    """Run Postfix smtp-source (HELO, one command per round trip); -> result dict with
    msg_per_s. A run that fails or times out reports messages 0 and the error."""
    path, env = postfix_tool("smtp-source")
    command = [path, "-M", HELO, "-f", SENDER, "-t", RECIPIENT, "-s", str(sessions),
               "-m", str(messages), "-l", str(size)]
    if reuse:
        command.append("-d")
    command.append("127.0.0.1:%d" % port)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        _, error = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(process, signal.SIGKILL)
        return {"messages": 0, "seconds": timeout, "msg_per_s": 0.0, "error": "timed out after %ss" % timeout}
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        text = error.decode("utf-8", "replace").strip().splitlines()
        return {"messages": 0, "seconds": seconds, "msg_per_s": 0.0,
                "error": text[-1] if text else "exit %d" % process.returncode}
    return {"messages": messages, "seconds": seconds, "msg_per_s": messages / seconds}
