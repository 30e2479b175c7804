"""The real daemon (`python -m smtpe -daemon`, or $SMTPE_BIN) against real peers: smtplib and
swaks as clients, Postfix smtp-sink and the recording sink as smart hosts."""
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from tests.support.daemon import Daemon
from tests.support.smtpsink import RecordingSink, SmtpSink

pytestmark = pytest.mark.timeout(180)

ACCEPT_ALL = "-- every hook left undefined: the smart host decides\n"


def send(port, sender, recipients, message, helo="client.test"):
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=60) as client:
        return client.sendmail(sender, recipients, message)


def smtp_error(port, sender, recipients, message):
    with pytest.raises(smtplib.SMTPException) as error:
        send(port, sender, recipients, message)
    return error.value


@pytest.fixture
def sink(tmp_path):
    with RecordingSink() as recording:
        yield recording


def daemon(tmp_path, script=ACCEPT_ALL, **options):
    values = {name.replace("_", "-"): str(value) for name, value in options.items()}
    return Daemon(tmp_path, script, values)


def test_accepted_mail_reaches_the_smart_host_byte_exact(tmp_path, sink):
    message = (b"From: a@x.org\r\nSubject: exact\r\n\r\n.leading dot\r\nline\r\n"
               b"\x00nul and 8-bit \xe9\r\n..two dots\r\n")
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        send(smtpe.port, "a@x.org", ["b@y.org", "c@y.org"], message)
        assert smtpe.spool_files() == []
    received = sink.messages[-1]
    assert received.sender == b"a@x.org"
    assert received.recipients == [b"b@y.org", b"c@y.org"]
    assert received.data == message


def test_smtp_sink_as_smart_host(tmp_path):
    with SmtpSink(tmp_path) as postfix_sink:
        with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % postfix_sink.port) as smtpe:
            for number in range(5):
                send(smtpe.port, "a@x.org", ["b@y.org"], b"Subject: %d\r\n\r\nbody\r\n" % number)
        assert postfix_sink.message_count() >= 5


@pytest.mark.parametrize("mode, code", [("refuse", 451), ("reject-data", 550), ("tempfail-rcpt", 451),
                                        ("hang", 451), ("drop-in-data", 451)])
def test_failing_smart_host_gives_no_false_250(tmp_path, mode, code):
    with RecordingSink(mode=mode) as failing:
        with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % failing.port,
                    smtp_command_timeout=3, smtp_dot_timeout=3, smtp_accept_timeout=3) as smtpe:
            error = smtp_error(smtpe.port, "a@x.org", ["b@y.org"], b"Subject: x\r\n\r\nbody\r\n")
            assert error.smtp_code == code
            assert smtpe.spool_files() == []


def test_no_smart_host_and_no_hook_tempfails(tmp_path):
    with daemon(tmp_path) as smtpe:
        assert smtp_error(smtpe.port, "a@x.org", ["b@y.org"], b"x\r\n").smtp_code == 451


def test_dot_positive_reply_is_sent_only_after_forwarding(tmp_path, sink):
    script = 'function hook.dot(path) return "250 2.0.0 judged and delivered" end'
    with daemon(tmp_path, script, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=30) as client:
            client.ehlo("c.test")
            client.mail("a@x.org")
            client.rcpt("b@y.org")
            code, text = client.data(b"Subject: x\r\n\r\nbody\r\n")
    assert (code, text) == (250, b"2.0.0 judged and delivered")
    assert len(sink.messages) == 1


def test_swaks_pipelining_session(tmp_path, sink):
    swaks = shutil.which("swaks")
    if not swaks:
        pytest.skip("swaks is not installed (.ci/run installs it)")
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        result = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(smtpe.port), "--pipeline",
                                 "--from", "a@x.org", "--to", "b@y.org,c@y.org", "--body", "swaks body",
                                 "--helo", "swaks.test"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<** " not in result.stdout
    assert sink.messages[-1].recipients == [b"b@y.org", b"c@y.org"]
    assert b"swaks body" in sink.messages[-1].data


def raw_session(port, chunks, read_timeout=10):
    """Send raw byte chunks, return everything the server said until it closed or went quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        received = b""
        sock.settimeout(2)
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.05)
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            received += data
        return received.decode("latin-1")


def test_a_line_in_pieces_is_answered_and_others_are_served_meanwhile(tmp_path, sink):
    """A command line (or a message's last dot) that arrives in pieces waits for the rest
    without holding the worker: the dialogue used to spin on the incomplete line for ever,
    one core at 100% and every other client of the worker unanswered."""
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        with socket.create_connection(("127.0.0.1", smtpe.port), timeout=10) as slow:
            assert slow.recv(1000).startswith(b"220")
            slow.sendall(b"HELO pie")
            time.sleep(0.2)
            send(smtpe.port, "a@x.org", ["b@y.org"], b"Subject: meanwhile\r\n\r\nbody\r\n")
            slow.sendall(b"ces.test\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
            replies = b""
            while replies.count(b"\r\n") < 4:
                replies += slow.recv(1000)
            assert replies.startswith(b"250 Hello pieces.test")
            assert replies.split(b"\r\n")[3].startswith(b"354")
            slow.sendall(b"Subject: slow\r\n\r\nbody\r\n.")
            time.sleep(0.2)
            slow.sendall(b"\r\n")
            assert slow.recv(1000).startswith(b"250 ")
    assert [message.data for message in sink.messages] == [b"Subject: meanwhile\r\n\r\nbody\r\n",
                                                          b"Subject: slow\r\n\r\nbody\r\n"]


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n"])
def test_smuggling_sequences_never_end_data(tmp_path, sink, smuggle):
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        payload = (b"Subject: s\r\n\r\nbefore" + smuggle +
                   b"MAIL FROM:<evil@x.org>\r\nRCPT TO:<victim@y.org>\r\nDATA\r\nsmuggled\r\n.\r\n")
        reply = raw_session(smtpe.port, [b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n",
                                         payload, b"QUIT\r\n"])
    assert reply.count("250 2.0.0 E000 message") == 1, reply
    assert len(sink.messages) == 1
    assert sink.messages[0].recipients == [b"b@y.org"]
    assert b"evil@x.org" in sink.messages[0].data   # it stayed message content


def test_ten_megabyte_message(tmp_path, sink):
    line = b"0123456789" * 7 + b"\r\n"
    message = b"Subject: big\r\n\r\n" + line * (10 * 1024 * 1024 // len(line))
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port) as smtpe:
        send(smtpe.port, "a@x.org", ["b@y.org"], message)
    assert sink.messages[-1].data == message


def test_dead_client_mid_data_leaves_no_spool_file(tmp_path, sink):
    # spool-memory=0: the file is written as data arrives, so there is one to leave behind
    with daemon(tmp_path, smtp_smart_host="127.0.0.1:%d" % sink.port, spool_memory=0) as smtpe:
        sock = socket.create_connection(("127.0.0.1", smtpe.port), timeout=10)
        sock.sendall(b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.org>\r\nDATA\r\nSubject: half\r\n\r\npart")
        deadline = time.monotonic() + 10
        while not smtpe.spool_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtpe.spool_files(), "the spool file exists while DATA is under way"
        sock.close()
        deadline = time.monotonic() + 10
        while smtpe.spool_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtpe.spool_files() == []
    assert sink.messages == []


def test_idle_timeout_sends_421_and_calls_hook_error(tmp_path):
    script = """
        function hook.error(number, text) syslog.info("hook.error " .. number .. " " .. text) end
        function hook.close(code) syslog.info("hook.close " .. code) end
    """
    with daemon(tmp_path, script, smtp_command_timeout=1) as smtpe:
        reply = raw_session(smtpe.port, [b"HELO c\r\n"], read_timeout=8)
        time.sleep(0.3)
        log = smtpe.log
    assert reply.splitlines()[-1].startswith("421 4.4.2")
    assert "hook.error 110 Connection timed out" in log
    assert "hook.close 0" in log


def test_fifty_interleaved_clients_whose_hooks_wait(tmp_path, sink):
    """Each hook.mail waits on an HTTP request to a server that answers after a second; all
    fifty clients are inside hook.mail at once, which proves that a waiting hook suspends
    only its own client, and each sees its own `client` table."""
    from tests.support.faultpeer import FaultPeer
    slow = FaultPeer("slow", reply=b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok", delay=0.5)
    slow.start()
    script = """
        inside, most = 0, 0
        function hook.mail(sender, domain)
            inside = inside + 1
            if inside > most then most = inside end
            client.mine = sender
            -- keep waiting (each wait a real HTTP request) until all fifty are inside, so the
            -- result does not depend on how fast the test threads start
            local results, rounds = nil, 0
            repeat
                service.http.request("http://127.0.0.1:%d/", "GET")
                results = service.wait(1)
                rounds = rounds + 1
            until most >= 50 or rounds >= 40
            inside = inside - 1
            if client.mine ~= sender then return "451 crossed tables" end
            return "250 2.1.0 ok " .. sender .. " http=" .. tostring(results.http[1].rcode) .. " most=" .. most
        end
    """ % slow.port
    try:
        # A listen queue for all fifty: with the default 20, a burst of fifty connects that
        # meets a worker slow to accept gets SYN cookies, and a cookie connection whose ACK
        # finds the queue full is dropped by the kernel without a trace while the client
        # believes it is connected (it waits for a banner that never comes).
        with daemon(tmp_path, script, smtp_smart_host="127.0.0.1:%d" % sink.port,
                    smtp_server_queue=64) as smtpe:
            results = {}

            def one(number):
                with smtplib.SMTP("127.0.0.1", smtpe.port, timeout=60) as client:
                    client.helo("c%d.test" % number)
                    results[number] = client.mail("s%d@x.org" % number)

            threads = [threading.Thread(target=one, args=(n,)) for n in range(50)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(90)
    finally:
        slow.stop()
    assert len(results) == 50
    for number, (code, text) in results.items():
        assert code == 250 and text.startswith(b"2.1.0 ok s%d@x.org http=200" % number), text
    assert max(int(text.rsplit(b"most=", 1)[1]) for _, text in results.values()) == 50


def test_script_that_does_not_load_refuses_to_start(tmp_path):
    broken = Daemon(tmp_path, "function hook.mail(\n  oops oops\n")
    from tests.support.daemon import smtpe_command
    result = subprocess.run(smtpe_command() + broken.args, capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode != 0
    assert "policy.lua:2:" in result.stderr


def test_missing_script_refuses_to_start(tmp_path):
    missing = Daemon(tmp_path, "")
    os.unlink(missing.script_path)
    from tests.support.daemon import smtpe_command
    result = subprocess.run(smtpe_command() + missing.args, capture_output=True, text=True, timeout=60,
                            cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert result.returncode != 0 and "policy.lua" in result.stderr
