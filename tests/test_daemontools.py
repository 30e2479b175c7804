"""smtpe under daemontools (Debian's `daemontools` package), with the example service of
build/service: supervise runs ./run, svc -h reloads, svc -t drains and supervise starts it
again, svc -d keeps it down, svstat reports; svscan + multilog file the log lines.
$SMTPE_BIN (the single binary) is used when set, as everywhere."""
import os
import re
import shutil
import signal
import smtplib
import subprocess

import pytest

from tests.support.daemon import ROOT, smtpe_command
from tests.support.debian import system_binary
from tests.support.net import free_port, stop_process, wait_for_port, wait_until
from tests.support.smtpsink import RecordingSink

pytestmark = pytest.mark.timeout(180)

SCRIPT = 'function hook.mail(sender, domain) return "250 2.1.0 policy %s" end\n'


@pytest.fixture
def tools():
    return {name: system_binary(name) for name in ("supervise", "svc", "svstat", "svscan", "multilog")}


@pytest.fixture
def sink():
    with RecordingSink() as recording:
        yield recording


def make_service(folder, sink, port):
    """build/service copied, with an option file for this test and the policy beside it."""
    service = os.path.join(str(folder), "smtpe")
    shutil.copytree(os.path.join(ROOT, "build", "service"), service)
    with open(os.path.join(service, "policy.lua"), "w") as handle:
        handle.write(SCRIPT % "v1")
    os.makedirs(os.path.join(service, "spool"))
    with open(os.path.join(service, "smtpe.cf"), "w") as handle:
        handle.write("\n".join([
            "script=%s/policy.lua" % service, "spool-dir=%s/spool" % service,
            "smtp-server-address=127.0.0.1", "smtp-server-port=%d" % port,
            "smtp-smart-host=127.0.0.1:%d" % sink.port, "dns-servers=127.0.0.1:9",
            "workers=2", "smtp-drain-timeout=20", ""]))
    return service


def service_env():
    # ./run execs $SMTPE (word-split, so `python -m smtpe` works as well as the binary).
    return dict(os.environ, SMTPE=" ".join(smtpe_command()),
                PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def svstat(tools, service):
    return subprocess.run([tools["svstat"], service], capture_output=True, text=True, timeout=10).stdout


def up_pid(tools, service):
    match = re.search(r": up \(pid (\d+)\)", svstat(tools, service))
    return int(match.group(1)) if match else None


def svc(tools, flag, *services):
    subprocess.run([tools["svc"], flag, *services], check=True, timeout=10)


def mail_reply(port, number):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("dt.test")
        code, text = client.mail("s%d@x.org" % number)
        client.rcpt("r@y.org")
        assert client.data(b"Subject: %d\r\n\r\nbody\r\n" % number)[0] == 250
    return text.decode()


def refused(port):
    try:
        wait_for_port(port, timeout=0.3)
    except (TimeoutError, OSError):
        return True
    return False


def test_supervise_reload_restart_down_and_status(tmp_path, tools, sink):
    port = free_port()
    service = make_service(tmp_path, sink, port)
    log_path = str(tmp_path / "supervise.log")
    with open(log_path, "wb") as log:
        supervise = subprocess.Popen([tools["supervise"], service], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, env=service_env())
    try:
        wait_for_port(port, timeout=30)
        first = wait_until(lambda: up_pid(tools, service), what="svstat up")
        assert mail_reply(port, 1) == "2.1.0 policy v1"

        # svc -h: the new script serves new connections, same process
        with open(os.path.join(service, "policy.lua"), "w") as handle:
            handle.write(SCRIPT % "v2")
        svc(tools, "-h", service)
        wait_until(lambda: len(re.findall("reloaded ", _read(log_path))) >= 2, what="reload")
        assert mail_reply(port, 2) == "2.1.0 policy v2"
        assert up_pid(tools, service) == first

        # svc -t: an open transaction finishes, then supervise starts smtpe again
        client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        client.ehlo("open.test")
        client.mail("a@x.org")
        client.rcpt("r@y.org")
        svc(tools, "-t", service)
        wait_until(lambda: refused(port), what="the listener to close while draining")
        assert client.data(b"Subject: 3\r\n\r\ndrained\r\n")[0] == 250
        assert client.getreply()[0] == 421
        client.close()
        second = wait_until(lambda: (up_pid(tools, service) or first) != first and up_pid(tools, service),
                            what="a restarted smtpe")
        wait_for_port(port, timeout=30)
        assert mail_reply(port, 4) == "2.1.0 policy v2"
        assert "terminated" in _read(log_path)

        # svc -d: drained and kept down; svc -u: up again
        svc(tools, "-d", service)
        wait_until(lambda: ": down " in svstat(tools, service), what="svstat down")
        assert refused(port)
        svc(tools, "-u", service)
        wait_until(lambda: up_pid(tools, service) not in (None, second), what="up again")
        wait_for_port(port, timeout=30)
        assert mail_reply(port, 5) == "2.1.0 policy v2"
    finally:
        subprocess.run([tools["svc"], "-dx", service], timeout=10)   # -x: supervise exits too
        try:
            supervise.wait(30)
        except subprocess.TimeoutExpired:
            supervise.kill()
            supervise.wait(5)
    assert sorted(m.data.split(b"\r\n")[0] for m in sink.messages) == [
        b"Subject: %d" % n for n in (1, 2, 3, 4, 5)]


def test_svscan_with_multilog_files_the_log(tmp_path, tools, sink):
    port = free_port()
    scan_dir = tmp_path / "services"
    scan_dir.mkdir()
    service = make_service(scan_dir, sink, port)
    svscan = subprocess.Popen([tools["svscan"], str(scan_dir)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=service_env())
    current = os.path.join(service, "log", "main", "current")
    try:
        wait_for_port(port, timeout=30)
        assert mail_reply(port, 1) == "2.1.0 policy v1"
        text = wait_until(lambda: "close " in _read(current) and _read(current), what="multilog lines")
        assert re.match(r"@4000[0-9a-f]{20} ", text)   # multilog's TAI64N stamp
        assert "smtpe started on port %d" % port in text
        assert up_pid(tools, os.path.join(service, "log"))
    finally:
        stop_process(svscan, signal.SIGTERM)
        subprocess.run([tools["svc"], "-dx", service, os.path.join(service, "log")], timeout=10)
        # svscan's children (supervise, smtpe, multilog) outlive it: end those still there.
        try:
            wait_until(lambda: not _processes_in(str(scan_dir)), timeout=30, what="the services to stop")
        except AssertionError:
            for pid in _processes_in(str(scan_dir)):
                os.kill(pid, signal.SIGKILL)


def _processes_in(folder):
    """Pids of processes started for this test: cwd or command line under `folder`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % name)
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                cmdline = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        if cwd.startswith(folder) or folder in cmdline:
            found.append(int(name))
    return found


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
