"""smtp.sendfile/sendstring, smtp.code and util.* through the real Lua API, against the
recording sink."""
import os

from tests.support.inproc import Harness
from tests.support.smtpsink import RecordingSink


def run(harness, hook, *args):
    from smtpe.engine import Engine
    outcomes = []
    ctx = harness.worker.engine.new_context()
    harness.worker.engine.run_hook(ctx, hook, args, outcomes.append)
    while not outcomes:
        harness.worker.loop.run_once(0.05)
    assert outcomes[0].error is None, outcomes[0].error
    return outcomes[0].values


SCRIPT = """
    function hook.send(host, message)
        local ok, n, replies = smtp.sendstring({host}, "a@x.org", {"b@y.org", "c@y.org"}, message)
        return ok, n, replies[1], replies[2]
    end
    function hook.sendfile(host, path)
        return smtp.sendfile(host, "", {"b@y.org"}, path)
    end
    function hook.codes() return smtp.code.OK, smtp.code.TRY_AGAIN_LATER, smtp.code.ERROR_CONNECT end
    function hook.util(dir)
        local load = util.getloadavg()
        return util.cpucount(), util.mkpath(dir .. "/a/b/c"), load["1m_avg"] == load[1]
    end
"""


def test_sendstring_and_call_ahead(tmp_path):
    harness = Harness(tmp_path, SCRIPT)
    with RecordingSink() as sink:
        host = "127.0.0.1:%d" % sink.port
        assert run(harness, "send", host.encode(), b"Subject: s\r\n\r\n.dot\r\n") == (True, 2, b"250 ok", b"250 ok")
        assert sink.messages[-1].data == b"Subject: s\r\n\r\n.dot\r\n"
        assert run(harness, "send", host.encode(), None) == (True, 2, b"250 ok", b"250 ok")  # call-ahead
        assert len(sink.messages) == 1
    with RecordingSink("tempfail-rcpt") as sink:
        ok, count, first, _ = run(harness, "send", ("127.0.0.1:%d" % sink.port).encode(), b"x\r\n")
        assert (ok, count, first) == (False, 0, b"451 4.3.0 try later")


def test_unreachable_host_returns_false_instead_of_raising(tmp_path):
    harness = Harness(tmp_path, SCRIPT, smtp_accept_timeout=2)
    with RecordingSink("refuse") as refused:
        ok, count, first, second = run(harness, "send", ("127.0.0.1:%d" % refused.port).encode(), b"x\r\n")
    assert (ok, count, first, second) == (False, 0, None, None)


def test_sendfile_null_sender(tmp_path):
    harness = Harness(tmp_path, SCRIPT)
    path = tmp_path / "message"
    path.write_bytes(b"Subject: f\r\n\r\nfile body")
    with RecordingSink() as sink:
        values = run(harness, "sendfile", ("127.0.0.1:%d" % sink.port).encode(), str(path).encode())
        assert values[:2] == (True, 1)
        assert sink.messages[-1].sender == b"" and sink.messages[-1].data == b"Subject: f\r\n\r\nfile body\r\n"


def test_codes_and_util(tmp_path):
    harness = Harness(tmp_path, SCRIPT)
    assert run(harness, "codes") == (250, 451, 110)
    cpus, made, same = run(harness, "util", str(tmp_path).encode())
    assert cpus == os.cpu_count() and made is True and same is True
    assert os.path.isdir(tmp_path / "a" / "b" / "c")
