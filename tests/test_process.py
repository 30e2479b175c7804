"""The daemon as a process: signals (TERM drains, HUP reloads, a failed reload keeps the
script), -check, and workers=N (a killed worker costs only its clients and comes back,
hook.init runs once, rate-client is shared). Real daemon (tests.support.daemon, or the
single binary when SMTPE_BIN is set), smtplib clients, the recording sink as smart host."""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from smtpe.server import STOP_GRACE
from tests.support.daemon import Daemon, smtpe_command
from tests.support.net import wait_until
from tests.support.smtpsink import RecordingSink

pytestmark = pytest.mark.timeout(240)

# hook.mail names the script version, so a client sees which master state served it;
# hook.helo logs the client's port, so the log (whose lines carry the pid) tells which
# worker serves which client.
VERSIONED = """
function hook.ehlo(arg) syslog.info("helo from port " .. client.port) end
hook.helo = hook.ehlo
function hook.mail(sender, domain) return "250 2.1.0 policy %s" end
"""


@pytest.fixture
def sink():
    with RecordingSink() as recording:
        yield recording


@pytest.fixture
def start(tmp_path, sink):
    """start(script=..., **options) -> a running Daemon; whatever a failed test leaves running
    is stopped at once (QUIT) afterwards."""
    started = []

    def start(script=VERSIONED % "v1", **options):
        values = {"smtp-smart-host": "127.0.0.1:%d" % sink.port}
        values.update({name.replace("_", "-"): str(value) for name, value in options.items()})
        started.append(Daemon(tmp_path, script, values))
        return started[-1].start()

    yield start
    for smtpe in started:
        smtpe.stop(signal.SIGQUIT)


def rewrite(smtpe, script):
    """Replace the script atomically (a reload never sees half a file)."""
    partial = smtpe.script_path + ".new"
    with open(partial, "w") as handle:
        handle.write(script)
    os.replace(partial, smtpe.script_path)


def log_count(smtpe, pattern):
    return len(re.findall(pattern, smtpe.log))


def live_workers(smtpe):
    """Worker pids from the supervisor's log lines: started and not ended."""
    log = smtpe.log
    ended = set(re.findall(r"worker (\d+) ended", log))
    return [int(pid) for pid in re.findall(r"worker (\d+) started", log) if pid not in ended]


def serving_pid(smtpe, client):
    """The pid of the worker serving an smtplib client that said EHLO (see VERSIONED)."""
    port = client.sock.getsockname()[1]
    pattern = r"smtpe\[(\d+)\][^\n]*helo from port %d\b" % port
    return int(wait_until(lambda: re.findall(pattern, smtpe.log), what="helo log line")[0])


def transaction(port, number, helo="client.test"):
    """One whole transaction on a new connection -> the MAIL reply text."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=30) as client:
        client.ehlo()
        code, text = client.mail("s%d@x.org" % number)
        assert code == 250, text
        code, text_rcpt = client.rcpt("r@y.org")
        assert code == 250, text_rcpt
        code, text_data = client.data(b"Subject: %d\r\n\r\nbody %d\r\n" % (number, number))
        assert code == 250, text_data
    return text.decode()


def subjects(sink):
    return sorted(int(re.search(rb"Subject: (\d+)", m.data).group(1)) for m in sink.messages)


# ---------------------------------------------------------------------------- TERM / INT
@pytest.mark.parametrize("workers", [1, 2])
def test_term_lets_open_transactions_finish_then_421_and_exit_0(tmp_path, start, workers, sink):
    # a listen queue for all fifty (see test_daemon's fifty-client test: with the default 20,
    # a burst that meets a slow accept can leave a SYN-cookie client waiting for ever)
    smtpe = start(workers=workers, smtp_drain_timeout=30, smtp_server_queue=64)
    count, go, errors, replies = 50, threading.Event(), [], {}
    in_transaction = threading.Semaphore(0)

    def client(number):
        try:
            with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=60) as conn:
                conn.ehlo("c%d.test" % number)
                assert conn.mail("s%d@x.org" % number)[0] == 250
                assert conn.rcpt("r@y.org")[0] == 250
                in_transaction.release()
                go.wait(60)
                replies[number] = (conn.data(b"Subject: %d\r\n\r\nbody\r\n" % number)[0],
                                   conn.getreply()[0])   # unasked: the 421 after the transaction
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append("%d: %r" % (number, exc))
            in_transaction.release()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for _ in range(count):
        assert in_transaction.acquire(timeout=60)
    assert errors == []
    idle = smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30)
    idle.ehlo("idle.test")

    smtpe.process.send_signal(signal.SIGTERM)
    assert idle.getreply()[0] == 421                         # no transaction: told at once
    idle.close()
    wait_until(lambda: _refused(smtpe.port), 10, "the listener to close")
    assert smtpe.process.poll() is None                      # still draining the 50
    go.set()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert replies == {n: (250, 421) for n in range(count)}
    assert smtpe.process.wait(30) == 0
    smtpe.stop()
    assert subjects(sink) == list(range(count))
    assert smtpe.spool_files() == []


def test_drain_deadline_421s_a_stalled_transaction(tmp_path, start):
    smtpe = start(smtp_drain_timeout=1)
    with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30) as conn:
        conn.ehlo("slow.test")
        conn.mail("a@x.org")
        smtpe.process.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert conn.getreply()[0] == 421
        assert time.monotonic() - started < 10
    assert smtpe.process.wait(20) == 0
    smtpe.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stop_held_up_by_a_computing_hook_ends_at_the_watchdog(tmp_path, start, workers):
    """A hook that computes for minutes (within a large lua-hook-cpu) holds its worker's
    loop, so the drain deadline, a timer of that loop, cannot fire: the alarm armed when TERM
    arrived ends the worker once the drain is overdue (drain timeout + STOP_GRACE)."""
    busy = 'function hook.mail() while true do syslog.debug("computing") end end\n'
    smtpe = start(busy, workers=workers, smtp_drain_timeout=1, lua_hook_cpu=600)
    if workers > 1:
        wait_until(lambda: len(live_workers(smtpe)) == workers, what="the workers")
    conn = socket.create_connection(("127.0.0.1", smtpe.port), timeout=30)
    try:
        assert conn.recv(1000).startswith(b"220")
        conn.sendall(b"HELO busy.test\r\nMAIL FROM:<a@x.org>\r\n")
        time.sleep(1)                 # (the hook is computing)
        smtpe.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = smtpe.process.wait(60)
        assert time.monotonic() - started < 1 + STOP_GRACE + 5
        if workers == 1:              # the worker is the process: ended by the alarm
            assert code == -signal.SIGALRM
        else:                         # the supervisor tells how its worker ended, and exits
            assert code == 0
            assert re.search(r"worker \d+ ended \(signal %d\) while stopping" % signal.SIGALRM, smtpe.log)
    finally:
        conn.close()
    smtpe.stop()


def _refused(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


# ---------------------------------------------------------------------------- HUP
@pytest.mark.parametrize("workers", [1, 2])
def test_hup_under_a_steady_stream_loses_and_refuses_nothing(tmp_path, start, workers, sink):
    smtpe = start(workers=workers)
    numbers, failures, seen = iter(range(1_000_000)), [], []
    lock, stop = threading.Lock(), threading.Event()

    def stream():
        while not stop.is_set():
            with lock:
                number = next(numbers)
            try:
                reply = transaction(smtpe.port, number)
                with lock:
                    seen.append((number, reply))
            except Exception as exc:  # noqa: BLE001 - every failure is a test failure
                failures.append("%d: %r" % (number, exc))

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in ("v2", "v3", "v4"):
            time.sleep(1.0)
            rewrite(smtpe, VERSIONED % version)
            smtpe.process.send_signal(signal.SIGHUP)
        wait_until(lambda: log_count(smtpe, r"reloaded ") >= 3 * workers, what="three reloads")
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == []
    assert len(seen) > 50
    assert sorted(number for number, _ in seen) == subjects(sink)  # every 250 reached the sink
    assert seen[-1][1] == "2.1.0 policy v4"
    assert {reply for _, reply in seen} <= {"2.1.0 policy %s" % v for v in ("v1", "v2", "v3", "v4")}
    assert smtpe.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_of_a_broken_script_logs_and_keeps_the_old_one(tmp_path, start, workers):
    smtpe = start(workers=workers)
    rewrite(smtpe, "function hook.mail(\n  oops oops\n")
    smtpe.process.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"reload (failed|refused).*policy\.lua:2:", smtpe.log), what="reload error")
    assert transaction(smtpe.port, 1) == "2.1.0 policy v1"
    rewrite(smtpe, 'function hook.init() error("init says no") end\n' + VERSIONED % "v2")
    smtpe.process.send_signal(signal.SIGHUP)
    wait_until(lambda: re.search(r"reload (failed|refused).*init says no", smtpe.log), what="init error")
    assert transaction(smtpe.port, 2) == "2.1.0 policy v1"
    rewrite(smtpe, VERSIONED % "v3")
    smtpe.process.send_signal(signal.SIGHUP)
    wait_until(lambda: log_count(smtpe, r"reloaded ") >= workers, what="reload")
    assert transaction(smtpe.port, 3) == "2.1.0 policy v3"
    assert smtpe.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_hup_at_once_after_start_neither_kills_nor_is_lost(tmp_path, start, workers):
    """Daemon.start returns as soon as the port listens: before the workers run their loops."""
    smtpe = start(workers=workers)
    rewrite(smtpe, VERSIONED % "v2")
    smtpe.process.send_signal(signal.SIGHUP)
    wait_until(lambda: log_count(smtpe, r"reloaded ") >= workers, what="the reload")
    assert transaction(smtpe.port, 1) == "2.1.0 policy v2"
    assert smtpe.process.poll() is None
    assert " ended (" not in smtpe.log
    assert smtpe.stop() == 0


# ---------------------------------------------------------------------------- -check
@pytest.mark.parametrize("script, code", [
    (VERSIONED % "v1", 0),
    ("function hook.init() syslog.info('init ran') end", 0),
    ("function hook.mail(\n  oops oops\n", 1),
    ("function hook.init() error('init says no') end", 1),
    (None, 1),
])
def test_check_exits_0_or_1(tmp_path, script, code):
    path = str(tmp_path / "policy.lua")
    if script is not None:
        with open(path, "w") as handle:
            handle.write(script)
    env = dict(os.environ, PYTHONPATH=_root())
    result = subprocess.run(smtpe_command() + ["-check", "file=", "script=" + path],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    assert ("policy.lua" in (result.stdout if code == 0 else result.stderr))


def _root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------- workers=2
# EHLO busy.test keeps its worker on the CPU for a second: a connection made meanwhile goes
# to the other worker (both wait on one listening socket, and while both are idle the same
# one tends to win every accept).
BUSYABLE = VERSIONED % "v1" + """
local log_port = hook.ehlo
function hook.ehlo(arg)
    log_port(arg)
    if arg == "busy.test" then
        local started = os.clock()
        while os.clock() - started < 1 do end
    end
end
"""


def while_busy(control, action):
    """Run action() while the worker serving `control` (an smtplib client) burns its second."""
    burner = threading.Thread(target=control.ehlo, args=("busy.test",))
    burner.start()
    time.sleep(0.2)   # (the EHLO has reached the worker)
    try:
        return action()
    finally:
        burner.join()


def test_killed_worker_costs_only_its_clients_and_comes_back(tmp_path, start, sink):
    smtpe = start(BUSYABLE, workers=2)
    wait_until(lambda: len(live_workers(smtpe)) == 2, what="two workers")
    clients = {}   # pid -> open clients in a transaction
    controls = []  # one idle client per worker, to keep that worker busy

    def connect(helo):
        conn = smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30)
        conn.ehlo(helo)
        return serving_pid(smtpe, conn), conn

    try:
        controls.append(connect("control1.test"))
        controls.append(while_busy(controls[0][1], lambda: connect("control2.test")))
        assert controls[0][0] != controls[1][0]
        for attempt in range(4):   # two clients for each worker, made while the other is busy
            other_control = controls[0][1] if attempt < 2 else controls[1][1]
            pid, conn = while_busy(other_control, lambda: connect("c%d.test" % attempt))
            conn.mail("s%d@x.org" % attempt)
            clients.setdefault(pid, []).append((attempt, conn))
        assert len(clients) == 2, "connections did not spread over both workers"
        victim, survivor = sorted(clients, key=lambda pid: len(clients[pid]))
        os.kill(victim, signal.SIGKILL)
        for number, conn in clients[victim]:
            with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
                conn.rcpt("r@y.org")
                conn.data(b"Subject: %d\r\n\r\nlost\r\n" % number)
        for number, conn in clients[survivor]:   # the other worker's clients go on
            assert conn.rcpt("r@y.org")[0] == 250
            assert conn.data(b"Subject: %d\r\n\r\nbody\r\n" % number)[0] == 250
            conn.quit()
        wait_until(lambda: len(live_workers(smtpe)) == 2 and victim not in live_workers(smtpe),
                   what="a new worker")
        assert re.search(r"worker %d ended \(signal 9\); starting another" % victim, smtpe.log)
        newcomer = (set(live_workers(smtpe)) - {survivor}).pop()
        # new clients work, and the newcomer takes them while the survivor is busy
        survivor_control = next(conn for pid, conn in controls if pid == survivor)
        pid, conn = while_busy(survivor_control, lambda: connect("n.test"))
        conn.quit()
        assert pid == newcomer
        assert transaction(smtpe.port, 999) == "2.1.0 policy v1"
    finally:
        for conn in [conn for conns in clients.values() for _, conn in conns] + [c for _, c in controls]:
            conn.close()
    assert sorted(subjects(sink)) == sorted([n for n, _ in clients[survivor]] + [999])
    assert smtpe.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_hook_init_runs_once_at_start_and_once_per_reload(tmp_path, start, workers):
    marks = tmp_path / "init-ran"
    script = ('function hook.init() local f = io.open(%r, "a") f:write("init\\n") f:close() end\n'
              % str(marks)) + VERSIONED % "v1"
    smtpe = start(script, workers=workers)
    if workers > 1:
        wait_until(lambda: len(live_workers(smtpe)) == workers, what="the workers")
    for number in range(6):
        transaction(smtpe.port, number)
    assert marks.read_text() == "init\n"
    smtpe.process.send_signal(signal.SIGHUP)
    wait_until(lambda: log_count(smtpe, r"reloaded ") >= workers, what="reload")
    transaction(smtpe.port, 6)
    assert marks.read_text() == "init\n" * 2
    assert smtpe.stop() == 0


def test_rate_client_is_counted_across_workers(tmp_path, start):
    limit = 6
    smtpe = start(workers=2, rate_client=limit)
    wait_until(lambda: len(live_workers(smtpe)) == 2, what="two workers")
    codes, pids = [], set()
    for number in range(2 * limit):
        try:
            with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30) as conn:
                conn.ehlo("c%d.test" % number)
                pids.add(serving_pid(smtpe, conn))
                codes.append(220)
        except smtplib.SMTPConnectError as exc:
            codes.append(exc.smtp_code)
    allowed = limit - 1   # Daemon.start's probe was the first connection from 127.0.0.1
    assert codes == [220] * allowed + [421] * (2 * limit - allowed), codes
    print("served by workers", sorted(pids))
    assert smtpe.stop() == 0


def test_workers_go_when_the_supervisor_is_killed(tmp_path, start):
    """SIGKILL to the daemon (svc -k; with SMTPE_BIN the one-file bootloader): the workers
    must not serve on as orphans holding the port a restarted daemon needs."""
    smtpe = start(workers=2, smtp_drain_timeout=5)
    workers = wait_until(lambda: len(live_workers(smtpe)) == 2 and live_workers(smtpe), what="two workers")
    unpacked = _one_file_folder(workers[0])
    smtpe.process.kill()
    smtpe.process.wait(10)
    wait_until(lambda: not [pid for pid in workers if _alive(pid)], 20, "the workers to exit")
    assert _refused(smtpe.port)
    smtpe.stop()
    if unpacked:  # a bootloader killed with SIGKILL cannot remove its folder: we do
        shutil.rmtree(unpacked, ignore_errors=True)


def _one_file_folder(pid):
    """Where the one-file binary (SMTPE_BIN) unpacked itself, from a process's environment."""
    with open("/proc/%d/environ" % pid, "rb") as handle:
        for item in handle.read().split(b"\0"):
            name, _, value = item.partition(b"=")
            if name == b"_PYI_APPLICATION_HOME_DIR" and b"_MEI" in value:
                return value.decode()
    return None


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"   # a zombie is gone too
    except (FileNotFoundError, IndexError):
        return False


def test_engine_runs_the_bytes_it_is_given_named_as_the_file(tmp_path):
    """Workers load the script bytes the supervisor checked (Engine source=), whatever the
    file holds by then; errors still name the file and line, a #! line included."""
    import io
    from smtpe.engine import Engine, ScriptError
    from smtpe.log import Log
    from smtpe._speedups.loop import Loop
    from smtpe.options import Options
    path = tmp_path / "policy.lua"
    path.write_text("this file is broken now (\n")
    log = Log(stream=io.StringIO())
    engine = Engine(Options(), Loop(), log, script=str(path),
                    source=b"#!/usr/bin/smtpe\nfunction hook.mail() return '250 from bytes' end\n")
    assert engine.has_hook("mail")
    with pytest.raises(ScriptError, match=r"policy\.lua:3: line three"):
        Engine(Options(), Loop(), log, script=str(path), source=b"#!x\n\nerror('line three')\n")
    with pytest.raises(ScriptError, match=r"policy\.lua:2:"):
        Engine(Options(), Loop(), log, script=str(path), source=b"-- ok\nfunction (\n")
