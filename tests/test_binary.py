"""The single executable (build/build.sh -> build/out/smtpe): built once per run (or reused
when newer than every source), checked on its own in an empty environment, then a
representative part of the integration suite runs against it with SMTPE_BIN."""
import glob
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

import pytest

from tests.support.daemon import ROOT, Daemon
from tests.support.net import wait_for_port
from tests.support.smtpsink import RecordingSink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

BINARY = os.path.join(ROOT, "build", "out", "smtpe")
SOURCES = ["smtpe/**/*.py", "smtpe/_speedups/*.pyx", "lua/**/*.lua", "build/*.spec", "build/*.py",
           "build/build.sh", "pyproject.toml", "setup.py"]
# What runs again with SMTPE_BIN: the daemon basics, signals and workers, daemontools.
SUITE = [
    "tests/test_daemon.py::test_accepted_mail_reaches_the_smart_host_byte_exact",
    "tests/test_daemon.py::test_smtp_sink_as_smart_host",
    "tests/test_daemon.py::test_failing_smart_host_gives_no_false_250",
    "tests/test_daemon.py::test_swaks_pipelining_session",
    "tests/test_daemon.py::test_ten_megabyte_message",
    "tests/test_daemon.py::test_idle_timeout_sends_421_and_calls_hook_error",
    "tests/test_daemon.py::test_script_that_does_not_load_refuses_to_start",
    "tests/test_process.py",
    "tests/test_daemontools.py",
]
# A clean environment: no PYTHONPATH, no virtualenv, nothing of the project on PATH.
BARE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _newest_source():
    paths = [path for pattern in SOURCES for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)]
    return max(os.path.getmtime(path) for path in paths)


@pytest.fixture(scope="module")
def binary():
    if not os.access(BINARY, os.X_OK) or os.path.getmtime(BINARY) < _newest_source():
        result = subprocess.run(["bash", os.path.join(ROOT, "build", "build.sh")], cwd=ROOT,
                                capture_output=True, text=True, timeout=600,
                                env=dict(os.environ, PYTHON=sys.executable))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return BINARY


def run_bare(binary, *args, cwd):
    return subprocess.run([binary, *args], cwd=cwd, env=dict(BARE_ENV, HOME=str(cwd)),
                          capture_output=True, text=True, timeout=60)


def test_version_and_help_in_an_empty_environment(binary, tmp_path):
    started = time.monotonic()
    version = run_bare(binary, "-version", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert version.returncode == 64, version.stderr        # action options exit 64
    assert version.stdout.startswith("smtpe ") and "Lua 5.1 via lupa" in version.stdout
    assert elapsed < 10
    help_text = run_bare(binary, "-help", cwd=tmp_path)
    assert help_text.returncode == 64 and "smtp-server-port=" in help_text.stdout
    info = run_bare(binary, "-info", cwd=tmp_path)
    assert 'FROZEN="True"' in info.stdout


def test_bundle_holds_lua51_only_the_lua_files_and_dependency_data(binary):
    from PyInstaller.archive.readers import CArchiveReader
    from PyInstaller.utils.hooks import collect_data_files
    bundle = _bundle_module()
    names = set(CArchiveReader(binary).toc)
    assert any(name.startswith("lupa/lua51.") for name in names)
    assert not [name for name in names if name.startswith(("lupa/lua5", "lupa/luajit"))
                and not name.startswith("lupa/lua51.")]
    for source, folder in bundle.lua_files():
        assert os.path.join(folder, os.path.basename(source)) in names
    assert "smtpe/lua/prelude.lua" in names
    for pyx in glob.glob(os.path.join(ROOT, "smtpe", "_speedups", "*.pyx")):
        module = "smtpe/_speedups/" + os.path.basename(pyx)[:-4] + "."
        assert any(name.startswith(module) for name in names), module
    for module in bundle.dependency_modules():   # e.g. the TLD list of the TLD package
        for source, folder in collect_data_files(module):
            assert os.path.join(folder, os.path.basename(source)) in names, source


def test_content_toolkit_and_dns_work_inside_the_binary(binary, tmp_path):
    """TLD data, the URI parser and c-ares' raw send (cffi) inside the one-file bundle;
    port 9 refuses, so the query ends at once with rcode ERRNO."""
    script = tmp_path / "check.lua"
    script.write_text("""
        function hook.init()
            assert(net.has_valid_tld("www.example.co.uk") and not net.has_valid_tld("a.invalidtld"))
            assert(uri.parse("http://a.example.com/x").host == "a.example.com")
            local digest = md5.new(); digest:ixhash2(("one, two; three\\n"):rep(30))
            assert(#digest:done() == 32)
            dns.open()
            dns.query(dns.class.IN, dns.type.A, "www.test")
            syslog.info("dns rcode " .. dns.rcodename(dns.wait(1)[1].rcode))
        end
    """)
    result = run_bare(binary, "-check", "script=%s" % script, "dns-servers=127.0.0.1:9",
                      "dns-max-timeout=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dns rcode ERRNO" in result.stderr


def test_bundle_leaves_out_tls_and_http_libraries(binary):
    from PyInstaller.archive.readers import CArchiveReader
    names = set(CArchiveReader(binary).toc)
    assert not [name for name in names if name.startswith(("cryptography/", "libssl", "certifi/"))]


def _bundle_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bundle", os.path.join(ROOT, "build", "bundle.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_whole_transaction_in_an_empty_environment(binary, tmp_path):
    with RecordingSink() as sink:
        smtpe = Daemon(tmp_path, "function hook.rcpt(r, d) if d ~= 'y.org' then return '550 no' end end",
                       {"smtp-smart-host": "127.0.0.1:%d" % sink.port})
        started = time.monotonic()
        process = subprocess.Popen([binary] + smtpe.args, cwd=str(tmp_path), env=dict(BARE_ENV, HOME=str(tmp_path)),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            banner = _first_banner(smtpe.port, process)
            first_banner_seconds = time.monotonic() - started
            assert banner.startswith(b"220 ")
            with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30) as client:
                client.ehlo("bare.test")
                refused = client.sendmail("a@x.org", ["b@y.org", "c@z.org"], b"Subject: bare\r\n\r\nbody\r\n")
            assert list(refused) == ["c@z.org"]
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors
        assert sink.messages[-1].recipients == [b"b@y.org"]
        assert first_banner_seconds < 15
        print("time to first banner: %.2fs" % first_banner_seconds)


def _first_banner(port, process, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                return sock.recv(512)
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("no banner")


def test_plus_daemon_detaches_and_keeps_working(binary, tmp_path):
    """+daemon: the foreground process returns once the detached copy listens; the copy still
    has its files when the first session needs them (see smtpe.frozen)."""
    with RecordingSink() as sink:
        smtpe = Daemon(tmp_path, "-- accept all\n", {"smtp-smart-host": "127.0.0.1:%d" % sink.port})
        args = ["+daemon" if arg == "-daemon" else arg for arg in smtpe.args]
        try:
            result = subprocess.run([binary] + args, cwd=str(tmp_path), env=dict(BARE_ENV, HOME=str(tmp_path)),
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            wait_for_port(smtpe.port, timeout=5)
            for number in range(3):
                with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30) as client:
                    client.sendmail("a@x.org", ["b@y.org"], b"Subject: %d\r\n\r\nbody\r\n" % number)
            assert len(sink.messages) == 3
        finally:
            for pid in _pids_running(binary, smtpe.script_path):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while _pids_running(binary, smtpe.script_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _pids_running(binary, smtpe.script_path)
        (tmp_path / "broken").mkdir()
        broken = Daemon(tmp_path / "broken", "oops oops")
        args = ["+daemon" if arg == "-daemon" else arg for arg in broken.args]
        result = subprocess.run([binary] + args, env=dict(BARE_ENV, HOME=str(tmp_path)),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and "policy.lua:1:" in result.stderr


def _pids_running(binary, marker):
    """Our detached daemon: processes of the binary whose arguments name this test's script."""
    pids = []
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0] == binary.encode() and any(marker.encode() in arg for arg in argv):
            pids.append(int(name))
    return pids


def test_integration_suite_against_the_binary(binary, tmp_path):
    env = dict(os.environ, SMTPE_BIN=binary)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--timeout=240",
                             "--basetemp", str(tmp_path / "suite")] + SUITE,
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    summary = result.stdout[-4000:]
    print(summary)
    assert result.returncode == 0, summary + result.stderr[-2000:]
    assert " passed" in summary and " failed" not in summary
