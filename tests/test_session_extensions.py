"""AUTH, XCLIENT, pipelining detection, client.write and close codes, input in any pieces,
in-process."""
import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.inproc import Harness, replies_in_pieces


def b64(text):
    return base64.b64encode(text.encode()).decode()


AUTH_SCRIPT = """
    function hook.auth(line, user, password, authzid)
        last = line .. "|" .. tostring(user) .. "|" .. tostring(password) .. "|" .. tostring(authzid)
        if user == "alice" and password == "secret" then return "235 2.7.0 welcome alice" end
        return "535 5.7.8 bad credentials"
    end
"""


def ehlo(harness, address="192.0.2.1"):
    client = harness.connect(address=address)
    client.new_output()
    reply = client.send("EHLO c.test\r\n")
    return client, reply


def test_auth_is_advertised_only_with_hook_auth(tmp_path):
    _, reply = ehlo(Harness(tmp_path / "a", "-- none"))
    assert "AUTH" not in reply
    _, reply = ehlo(Harness(tmp_path / "b", AUTH_SCRIPT))
    assert "250-AUTH PLAIN LOGIN\r\n" in reply


def test_auth_plain_initial_response(tmp_path):
    harness = Harness(tmp_path, AUTH_SCRIPT)
    client, _ = ehlo(harness)
    assert client.send("AUTH PLAIN %s\r\n" % b64("\0alice\0wrong")) == "535 5.7.8 bad credentials\r\n"
    assert client.send("AUTH PLAIN %s\r\n" % b64("boss\0alice\0secret")) == "235 2.7.0 welcome alice\r\n"
    assert harness.worker.engine.lua.eval("last") == b"AUTH PLAIN %s|alice|secret|boss" % b64("boss\0alice\0secret").encode()
    assert client.send("AUTH PLAIN %s\r\n" % b64("\0alice\0secret")) == "503 5.5.1 E000 already authenticated\r\n"


def test_auth_login_with_challenges_and_cancel(tmp_path):
    harness = Harness(tmp_path, AUTH_SCRIPT)
    client, _ = ehlo(harness)
    assert client.send("AUTH LOGIN\r\n") == "334 VXNlcm5hbWU6\r\n"
    assert client.send(b64("alice") + "\r\n") == "334 UGFzc3dvcmQ6\r\n"
    assert client.send(b64("secret") + "\r\n") == "235 2.7.0 welcome alice\r\n"
    other, _ = ehlo(harness)
    assert other.send("AUTH PLAIN\r\n") == "334 \r\n"
    assert other.send("*\r\n") == "501 5.0.0 E000 AUTH cancelled\r\n"
    assert other.send("AUTH CRAM-MD5\r\n") == "504 5.5.4 E000 unknown AUTH mechanism\r\n"
    assert other.send("AUTH PLAIN !!notbase64\r\n") == "501 5.5.2 E000 invalid AUTH response\r\n"


def test_auth_outside_ehlo_state_is_unknown(tmp_path):
    harness = Harness(tmp_path, AUTH_SCRIPT)
    client = harness.connect()
    client.new_output()
    client.send("HELO c\r\n")
    assert client.send("AUTH PLAIN x\r\n") == "502 5.5.1 E000 AUTH PLAIN x command unknown\r\n"


XCLIENT_SCRIPT = """
    function hook.accept(ip, host) return "220 hello " .. ip .. " " .. host end
    function hook.xclient() if client.address == "192.0.2.9" then return "250 ok, trusted" end end
"""


def test_xclient_from_loopback_reruns_the_accept_phase(tmp_path):
    harness = Harness(tmp_path, XCLIENT_SCRIPT)
    client = harness.connect(address="127.0.0.1")
    assert client.new_output() == "220 hello 127.0.0.1 [127.0.0.1]\r\n"
    client.send("EHLO c\r\n")
    assert client.send("XCLIENT ADDR=198.51.100.7 NAME=Relay.Example.\r\n") == "220 hello 198.51.100.7 relay.example\r\n"
    assert client.send("MAIL FROM:<a@b.cd>\r\n").startswith("503 ")   # HELO/EHLO again first
    assert client.send("HELO x\r\n") == "250 Hello x (198.51.100.7, relay.example)\r\n"


def test_xclient_refused_for_others_unless_the_hook_trusts_them(tmp_path):
    harness = Harness(tmp_path, XCLIENT_SCRIPT)
    stranger = harness.connect(address="192.0.2.1")
    stranger.new_output()
    assert stranger.send("XCLIENT ADDR=10.0.0.1\r\n") == "550 5.7.0 E000 XCLIENT not permitted\r\n"
    trusted = harness.connect(address="192.0.2.9")
    trusted.new_output()
    assert trusted.send("XCLIENT ADDR=10.0.0.1 PORT=2525\r\n") == "220 hello 10.0.0.1 [10.0.0.1]\r\n"
    # the session now speaks for 10.0.0.1, which the hook does not trust
    assert trusted.send("XCLIENT ADDR=10.0.0.2\r\n") == "550 5.7.0 E000 XCLIENT not permitted\r\n"
    fresh = harness.connect(address="192.0.2.9")
    fresh.new_output()
    assert fresh.send("XCLIENT FOO=1\r\n") == "501 5.5.4 E000 invalid argument FOO=1\r\n"


def test_xclient_disabled_is_an_unknown_command(tmp_path):
    harness = Harness(tmp_path, XCLIENT_SCRIPT, smtp_xclient="-")
    client = harness.connect(address="127.0.0.1")
    client.new_output()
    assert client.send("XCLIENT ADDR=10.0.0.1\r\n") == "502 5.5.1 E000 XCLIENT ADDR=10.0.0.1 command unknown\r\n"


PIPELINING_SCRIPT = """
    function hook.rcpt(r, d) seen = client.is_pipelining end
"""


def test_pipelining_detected_without_negotiation(tmp_path):
    harness = Harness(tmp_path, PIPELINING_SCRIPT)
    client = harness.connect()
    client.new_output()
    client.send("HELO c\r\n")
    replies = client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\n")
    assert replies.count("250 2.1.0") == 2            # each command got its own reply
    assert harness.worker.engine.lua.eval("seen") is True


def test_negotiated_pipelining_is_not_flagged(tmp_path):
    harness = Harness(tmp_path, PIPELINING_SCRIPT)
    client = harness.connect()
    client.new_output()
    client.send("EHLO c\r\n")
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert harness.worker.engine.lua.eval("seen") is False


def test_pipelining_reject_option(tmp_path):
    harness = Harness(tmp_path, "", rfc2920_pipelining_reject="+")
    client = harness.connect()
    client.new_output()
    client.send("HELO c\r\n")
    replies = client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\n")
    assert replies.endswith("550 5.3.3 E000 pipelining not allowed\r\n")


def test_data_without_recipients_discards_pipelined_content(tmp_path):
    harness = Harness(tmp_path, 'function hook.rcpt() return "550 no" end')
    client = harness.connect()
    client.new_output()
    client.send("EHLO c\r\n")
    replies = client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\nQUIT\r\nmore\r\n")
    assert replies.endswith("554 5.5.0 E000 pipeline data after DATA command\r\n")
    assert not client.closed   # the QUIT was discarded as content that must not run


def test_client_write_sends_continuation_lines(tmp_path):
    harness = Harness(tmp_path, """
        function hook.help()
            for _, line in ipairs({"one", "two"}) do client.write("214-" .. line .. "\\r\\n") end
            return "214 end"
        end
    """)
    client = harness.connect()
    client.new_output()
    assert client.send("HELP\r\n") == "214-one\r\n214-two\r\n214 end\r\n"


def test_close_codes_and_drop_flag(tmp_path):
    harness = Harness(tmp_path, """
        codes = {}
        function hook.accept(ip) if ip == "192.0.2.66" then return true, "554 5.7.1 go away" end end
        function hook.close(code) codes[#codes + 1] = code end
    """)
    dropped = harness.connect(address="192.0.2.66")
    assert dropped.new_output() == "554 5.7.1 go away\r\n" and dropped.closed
    polite = harness.connect()
    polite.send("QUIT\r\n")
    rude = harness.connect()
    rude.close_input()
    assert list(harness.worker.engine.lua.eval("codes").values()) == [1, 0, 4]


def test_rate_client_limit(tmp_path):
    harness = Harness(tmp_path, "codes = {} function hook.close(c) codes[#codes+1] = c end", rate_client=2)
    for _ in range(2):
        assert harness.connect(address="192.0.2.5").new_output().startswith("220 ")
    third = harness.connect(address="192.0.2.5")
    assert third.new_output() == "421 4.4.5 E000  [192.0.2.5] connections 3 exceed 2/60s\r\n"
    assert third.closed
    assert harness.connect(address="192.0.2.6").new_output().startswith("220 ")
    assert 2 in list(harness.worker.engine.lua.eval("codes").values())


def test_hook_accept_error_closes_with_421(tmp_path):
    harness = Harness(tmp_path, 'function hook.accept() error("no policy") end')
    client = harness.connect()
    assert client.new_output() == "421 4.3.0 E000 internal error\r\n"
    assert client.closed


def test_default_at_dot_option(tmp_path):
    harness = Harness(tmp_path, "", smtp_default_at_dot=250)
    client = harness.connect()
    client.send("HELO c\r\nMAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert " accepted" in client.send("x\r\n.\r\n")


def test_hooks_defined_at_run_time_are_called(tmp_path):
    harness = Harness(tmp_path, """
        function hook.helo() function hook.noop() return "250 2.0.0 defined by hook.helo" end end
    """)
    client = harness.connect()
    client.new_output()
    assert client.send("NOOP\r\n") == "250 2.0.0 OK\r\n"
    client.send("HELO c\r\n")
    assert client.send("NOOP\r\n") == "250 2.0.0 defined by hook.helo\r\n"


def test_lua_cannot_reach_python_internals(tmp_path):
    harness = Harness(tmp_path, """
        function hook.noop()
            local ok = pcall(function() return text.find.__globals__ end)
            local ok2 = pcall(function() local m = md5.new(); return m._md5 end)
            return "250 " .. tostring(ok) .. " " .. tostring(ok2)
        end
    """)
    client = harness.connect()
    client.new_output()
    assert client.send("NOOP\r\n") == "250 false false\r\n"


# -- any command, any chunking --------------------------------------------------------------
# A client's writes, each sent once the reply to the one before has come: every command the
# dialogue knows, good and bad, AUTH with its challenges, a message with dot-stuffing and bare
# line ends, an empty one, one with an overlong line, an overlong command line.
WRITES = [
    b"EHLO client.example\r\n", b"HELP\r\n", b"NOOP\r\n", b"BOGUS x\r\n", b"RCPT TO:<b@y.org>\r\n",
    b"AUTH LOGIN\r\n", b"YWxpY2U=\r\n", b"c2VjcmV0\r\n",
    b"MAIL FROM:<a@x.org> SIZE=100 BODY=8BITMIME\r\n", b"RCPT TO:<not an address>\r\n",
    b"RCPT TO:<b@Y.org>\r\n", b"DATA\r\n",
    b"Subject: pieces\r\n\r\n.leading dot\r\n..two\r\nbare\rCR and bare\nLF\r\n" + b"x" * 900 + b"\r\n.\r\n",
    b"RSET\r\n", b"MAIL FROM:<>\r\n", b"RCPT TO:<c@y.org>\r\n", b"DATA\r\n", b".\r\n",
    b"MAIL FROM:<a@x.org>\r\n", b"RCPT TO:<d@y.org>\r\n", b"DATA\r\n", b"z" * 5000 + b"\r\n.\r\n",
    b"Y" * 1200 + b"\r\n", b"QUIT\r\n",
]


WHOLE = []


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_chunking_of_the_client_writes_gives_the_same_replies(data):
    """Each write cut in up to six pieces at random points (a command or its line end split,
    the message's final dot alone ...): the replies are those of the writes sent whole. A
    partial line used to make the dialogue spin for ever."""
    if not WHOLE:
        WHOLE.extend(replies_in_pieces(AUTH_SCRIPT, [[write] for write in WRITES]))
        assert WHOLE[1].startswith("250-Hello") and "235 2.7.0 welcome alice" in WHOLE[8]
    cut = []
    for write in WRITES:
        points = sorted(set(data.draw(st.lists(st.integers(1, len(write) - 1), max_size=5))))
        cut.append([write[start:end] for start, end in zip([0] + points, points + [len(write)])])
    assert replies_in_pieces(AUTH_SCRIPT, cut) == WHOLE
