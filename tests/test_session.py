"""The SMTP dialogue without sockets: every command in every state, the default replies,
hook return conventions, and golden transcripts of whole sessions (in-process Worker, real
Engine and Lua, memory transport)."""
import os

import pytest

from tests.support.inproc import Harness, hide_ids, replies_in_pieces
from tests.support.smtpsink import RecordingSink

QUIET = "-- no hooks\n"




def dialogue(client, lines):
    """Send each line, collect '>>> line' and the replies: a transcript."""
    out = [hide_ids(client.new_output()).rstrip("\r\n")]
    for line in lines:
        out.append(">>> " + line.rstrip("\r\n"))
        reply = hide_ids(client.send(line if line.endswith("\r\n") else line + "\r\n")).rstrip("\r\n")
        if reply:
            out.append(reply)
    return "\n".join(out).replace("\r\n", "\n")


@pytest.fixture
def harness(tmp_path):
    return Harness(tmp_path, QUIET)


def test_golden_plain_session_without_hooks(harness):
    client = harness.connect()
    transcript = dialogue(client, [
        "EHLO client.example", "MAIL FROM:<Alice@Example.ORG>", "RCPT TO:<Bob@Example.NET>",
        "DATA", "Subject: hi\r\n\r\nbody\r\n.", "QUIT"])
    assert transcript == "\n".join([
        "220 mx.test ESMTP <ID>",
        ">>> EHLO client.example",
        "250-Hello client.example (192.0.2.1, [192.0.2.1])",
        "250-ENHANCEDSTATUSCODES",
        "250-XCLIENT ADDR HELO NAME PORT PROTO",
        "250-PIPELINING",
        "250-8BITMIME",
        "250 SIZE 0",
        ">>> MAIL FROM:<Alice@Example.ORG>",
        "250 2.1.0 sender <Alice@Example.ORG> OK",
        ">>> RCPT TO:<Bob@Example.NET>",
        "250 2.1.0 recipient <Bob@example.net> OK",
        ">>> DATA",
        '354 enter mail, end with "." on a line by itself',
        ">>> Subject: hi\n\nbody\n.",
        "451 4.4.5 E000 try again later <ID>",    # no hook, no smart host: smtp-default-at-dot
        ">>> QUIT",
        "221 2.0.0 mx.test closing connection <ID>",
    ])
    assert client.closed
    assert os.listdir(harness.spool_dir) == []


def test_golden_session_with_hooks_and_helo(tmp_path):
    harness = Harness(tmp_path, """
        function hook.accept(ip, host) return "220 welcome " .. ip end
        function hook.helo(arg) if arg == "bad" then return "550 go away" end end
        function hook.mail(sender, domain) client.sender_domain = domain end
        function hook.rcpt(rcpt, domain)
            if domain ~= client.sender_domain then return "550 5.7.1 relaying denied" end
        end
        function hook.dot(path) return "250 2.0.0 judged fine" end
        function hook.forward(path, sender, rcpts) return "250 2.0.0 stored for " .. #rcpts .. " " .. sender end
        function hook.quit() return "221 bye" end
    """)
    client = harness.connect()
    transcript = dialogue(client, [
        "MAIL FROM:<a@x.org>", "HELO bad", "MAIL FROM:<a@x.org>", "HELO good", "MAIL FROM:<a@x.org>",
        "RCPT TO:<b@y.org>", "DATA", "RCPT TO:<c@X.ORG>", "DATA", "hello\r\n.", "QUIT"])
    assert transcript == "\n".join([
        "220 welcome 192.0.2.1",
        ">>> MAIL FROM:<a@x.org>", "503 5.5.1 E000 MAIL FROM:<a@x.org> out of sequence",
        ">>> HELO bad", "550 go away",
        ">>> MAIL FROM:<a@x.org>", "503 5.5.1 E000 MAIL FROM:<a@x.org> out of sequence",
        ">>> HELO good", "250 Hello good (192.0.2.1, [192.0.2.1])",
        ">>> MAIL FROM:<a@x.org>", "250 2.1.0 sender <a@x.org> OK",
        ">>> RCPT TO:<b@y.org>", "550 5.7.1 relaying denied",
        ">>> DATA", "554 5.5.0 E000 no recipients",
        ">>> RCPT TO:<c@X.ORG>", "250 2.1.0 recipient <c@x.org> OK",
        ">>> DATA", '354 enter mail, end with "." on a line by itself',
        ">>> hello\n.", "250 2.0.0 stored for 1 a@x.org",
        ">>> QUIT", "221 bye",
    ])


@pytest.mark.parametrize("command, reply", [
    ("HELO", "501 5.5.2 E000 missing argument"),
    ("EHLO", "501 5.5.2 E000 missing argument"),
    ("NOOP", "250 2.0.0 OK"),
    ("RSET", "250 2.0.0 OK"),
    ("VRFY postmaster", "502 5.5.1 E000 VRFY postmaster command unknown"),
    ("HELOX foo", "502 5.5.1 E000 HELOX foo command unknown"),
    ("AUTH PLAIN AGEAYg==", "502 5.5.1 E000 AUTH PLAIN AGEAYg== command unknown"),
    ("MAIL FROM:<a@b.cd>", "503 5.5.1 E000 MAIL FROM:<a@b.cd> out of sequence"),
    ("RCPT TO:<a@b.cd>", "503 5.5.1 E000 RCPT TO:<a@b.cd> out of sequence"),
    ("DATA", "503 5.5.1 E000 DATA out of sequence"),
    ("VERB +debug", "502 5.5.1 E000 VERB +debug command unknown"),
])
def test_replies_before_helo(harness, command, reply):
    client = harness.connect()
    client.new_output()
    assert client.send(command + "\r\n") == reply + "\r\n"


def helo(harness):
    client = harness.connect()
    client.send("HELO c.example\r\n")
    return client


@pytest.mark.parametrize("command, reply", [
    ("MAIL FROM <a@b.cd>", "501 5.5.2 E000 syntax error"),
    ("MAIL FROM:", "501 5.5.2 E000 missing argument"),
    ("MAIL FROM:<a@b>", "553 5.1.7 invalid domain name E000 "),
    ("MAIL FROM:<a@b.cd", "553 5.1.0 imbalanced angle brackets in path E000 "),
    ("MAIL FROM:<>", "250 2.1.0 sender <> OK"),
    ("RCPT TO:<a@b.cd>", "503 5.5.1 E000 RCPT TO:<a@b.cd> out of sequence"),
    ("HELP", None),
])
def test_replies_after_helo(harness, command, reply):
    client = helo(harness)
    answer = client.send(command + "\r\n")
    if reply is None:
        assert answer.startswith("214-2.0.0 ESMTP supported commands:") and answer.endswith("214 2.0.0 End\r\n")
    else:
        assert answer == reply + "\r\n"


def in_transaction(harness):
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\n")
    return client


@pytest.mark.parametrize("command, reply", [
    ("RCPT TO:<>", "550 5.7.1 E000 null recipient invalid"),
    ("RCPT TO:<postmaster>", "250 2.1.0 recipient <postmaster> OK"),
    ("RCPT TO:<a@[10.0.0.1]>", "553 5.1.3 invalid domain name E000 "),
    ("RCPT TO:<a@b.cd> NOTIFY=NEVER", "250 2.1.0 recipient <a@b.cd> OK"),
    ("MAIL FROM:<a@b.cd>", "503 5.5.1 E000 MAIL FROM:<a@b.cd> out of sequence"),
    ("DATA", "503 5.5.1 E000 DATA out of sequence"),
])
def test_replies_in_transaction(harness, command, reply):
    client = in_transaction(harness)
    assert client.send(command + "\r\n") == reply + "\r\n"


def test_rset_ends_the_transaction(harness):
    client = in_transaction(harness)
    assert client.send("RSET\r\n") == "250 2.0.0 OK\r\n"
    assert client.send("RCPT TO:<a@b.cd>\r\n").startswith("503 ")
    assert client.send("MAIL FROM:<a@b.cd>\r\n").startswith("250 ")


def test_size_limit_at_mail_and_in_data(tmp_path):
    harness = Harness(tmp_path, "function hook.forward() return '250 taken' end", smtp_max_size=100)
    client = harness.connect()
    assert "250 SIZE 100" in client.send("EHLO c\r\n")
    assert client.send("MAIL FROM:<a@b.cd> SIZE=101\r\n") == "552 5.3.4 E000 message size exceeds 100\r\n"
    assert client.send("MAIL FROM:<a@b.cd> SIZE=100\r\n").startswith("250 ")
    client.send("RCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("x" * 200 + "\r\n.\r\n") == "552 5.3.4 E000 message size exceeds 100\r\n"
    assert os.listdir(harness.spool_dir) == []


def test_empty_message_is_refused(tmp_path):
    harness = Harness(tmp_path, "function hook.dot() error('must not be called') end")
    client = harness.connect()
    client.send("HELO c\r\nMAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert hide_ids(client.send(".\r\n")) == "550 5.6.0 E000 message <ID> is empty\r\n"


def test_overlong_command_line(harness):
    client = harness.connect()
    client.new_output()
    assert client.send("NOOP " + "x" * 2000 + "\r\n") == "500 5.5.2 E000 line too long\r\n"
    assert client.send("NOOP\r\n") == "250 2.0.0 OK\r\n"


def test_hook_return_conventions(tmp_path):
    harness = Harness(tmp_path, """
        function hook.noop()
            local mode = client.input:sub(6)
            if mode == "number" then return 250 end
            if mode == "invalid" then return "hello" end
            if mode == "nil-last" then return "550 ignored", nil end
            if mode == "table" then return {} end
            if mode == "crlf" then return "250-a\\r\\n250 b\\r\\n" end
            if mode == "drop" then return true, "421 4.7.0 goodbye" end
            if mode == "nodrop" then return false, "250 fine" end
        end
    """)
    client = harness.connect()
    client.new_output()
    assert client.send("NOOP number\r\n") == "250\r\n"
    assert client.send("NOOP invalid\r\n") == "250 2.0.0 OK\r\n"
    assert client.send("NOOP nil-last\r\n") == "250 2.0.0 OK\r\n"
    assert client.send("NOOP table\r\n") == "250 2.0.0 OK\r\n"
    assert client.send("NOOP crlf\r\n") == "250-a\r\n250 b\r\n"
    assert client.send("NOOP nodrop\r\n") == "250 fine\r\n"
    assert not client.closed
    assert client.send("NOOP drop\r\n") == "421 4.7.0 goodbye\r\n"
    assert client.closed


def test_cpu_budget_counts_every_resume_of_a_hook(tmp_path):
    """Each stretch between two waits stays under the budget; their sum does not."""
    harness = Harness(tmp_path, """
        function hook.helo(arg)
            for round = 1, 100 do
                client.write("")
                local stop = os.clock() + 0.05
                while os.clock() < stop do end
            end
            return "250 never reached"
        end
    """, lua_hook_cpu=0.3)
    client = harness.connect()
    client.new_output()
    assert client.send("HELO x\r\n") == "451 4.3.0 E000 internal error, try again later\r\n"
    assert "CPU time budget" in harness.log


def test_reused_hook_coroutines_start_each_hook_afresh(tmp_path):
    """Hooks run in reused worker coroutines (lua/prelude.lua): the CPU budget starts anew for
    each hook, a hook that fails, yields on its own or is abandoned while waiting leaves
    the following hooks unaffected, and a hook that is still waiting keeps its own
    coroutine while other hooks run."""
    harness = Harness(tmp_path, """
        function hook.noop()
            local stop = os.clock() + 0.12          -- 60% of the budget, every time
            while os.clock() < stop do end
            return "250 spent"
        end
        function hook.helo(arg)
            if arg == "fail" then error("planned failure") end
            if arg == "yield" then coroutine.yield("not a wait") end
            if arg == "wait" then client.write(""); return "250 waited " .. tostring(coroutine.running() ~= nil) end
            return "250 fine " .. arg
        end
    """, lua_hook_cpu=0.2)
    client = harness.connect()
    client.new_output()
    for _ in range(4):  # 4 x 60%: only a budget carried over from hook to hook would fail
        assert client.send("NOOP\r\n") == "250 spent\r\n"
    assert client.send("HELO fail\r\n").startswith("451 ")
    assert "planned failure" in harness.log
    assert client.send("HELO yield\r\n").startswith("451 ")
    assert "yielded outside a waiting API call" in harness.log
    assert client.send("HELO wait\r\n") == "250 waited true\r\n"
    assert client.send("HELO again\r\n") == "250 fine again\r\n"
    assert client.send("NOOP\r\n") == "250 spent\r\n"


def test_lua_error_gives_451_and_session_continues(tmp_path):
    harness = Harness(tmp_path, """
        function hook.mail(sender) error("policy bug") end
        function hook.rcpt(r) local x = nil; return x.field end
    """)
    client = helo(harness)
    assert client.send("MAIL FROM:<a@b.cd>\r\n") == "451 4.3.0 E000 internal error, try again later\r\n"
    assert "hook.mail" in harness.log and "policy bug" in harness.log and "stack traceback" in harness.log
    assert client.send("NOOP\r\n") == "250 2.0.0 OK\r\n"


def test_runaway_hooks_cost_only_their_client(tmp_path):
    harness = Harness(tmp_path, """
        function hook.helo(arg)
            if arg == "loop" then while true do end end
            if arg == "bomb" then local t = {} for i = 1, 1e9 do t[i] = {i, i, i, i, i, i, i, i} end end
        end
    """, lua_hook_cpu=0.5, lua_max_memory=64)
    looping = harness.connect()
    looping.new_output()
    assert looping.send("HELO loop\r\n") == "451 4.3.0 E000 internal error, try again later\r\n"
    assert "CPU time budget" in harness.log
    bomb = harness.connect()
    bomb.new_output()
    assert bomb.send("HELO bomb\r\n") == "451 4.3.0 E000 internal error, try again later\r\n"
    assert "not enough memory" in harness.log
    fine = harness.connect()
    fine.new_output()
    assert fine.send("HELO fine\r\n").startswith("250 Hello fine")


def test_hooks_called_in_order_with_arguments(tmp_path):
    harness = Harness(tmp_path, """
        calls = {}
        local function note(...) local t = {} for i, v in ipairs({...}) do t[i] = tostring(v) end
            calls[#calls + 1] = table.concat(t, "|") end
        function hook.accept(ip, host) note("accept", ip, host, client.id_sess ~= nil, client.port) end
        function hook.ehlo(arg) note("ehlo", arg) end
        function hook.reset() note("reset", tostring(client.id_trans)) end
        function hook.mail(s, d) note("mail", s, d, client.id_trans ~= nil) end
        function hook.rcpt(r, d) note("rcpt", r, d) end
        function hook.data() note("data", client.msg_file ~= nil) end
        function hook.content(chunk) note("content", #chunk) end
        function hook.header(h) note("header", h) end
        function hook.eoh() note("eoh") end
        function hook.body(line) note("body", line) end
        function hook.dot(path) note("dot", client.message_length) end
        function hook.forward(path, sender, rcpts) note("forward", sender, rcpts[1], rcpts[2]) return "250 ok" end
        function hook.reply(text) note("reply", text:sub(1, 3)) end
        function hook.quit() note("quit") end
        function hook.close(code) note("close", code) end
        function hook.unknown(line) note("unknown", line) end
    """)
    client = harness.connect(port=40001)
    client.send("EHLO c.example\r\n")
    client.send("MAIL FROM:<S@X.ORG>\r\nRCPT TO:<A@Y.ORG>\r\nRCPT TO:<b@y.org>\r\nDATA\r\n")
    client.send("Subject: one\r\n\tfolded\r\nTo: x\r\n\r\nline 1\r\n..dotted\r\n.\r\nFOO bar\r\nQUIT\r\n")
    calls = [call.decode() for call in harness.worker.engine.lua.eval("calls").values()]
    expected = [
        "accept|192.0.2.1|[192.0.2.1]|true|40001", "reply|220",
        "ehlo|c.example", "reply|250", "reset|nil",
        "mail|S@X.ORG|x.org|true", "reply|250",
        "rcpt|A@Y.ORG|y.org", "reply|250", "rcpt|b@y.org|y.org", "reply|250",
        "data|true", "reply|354",
        "content|49", "header|Subject: one\r\n\tfolded", "header|To: x", "eoh", "body|line 1", "body|.dotted",
        "dot|49", "forward|S@X.ORG|A@y.org|b@y.org", "reply|250", "reset|%s",
        "unknown|FOO bar", "reply|502", "quit", "reply|221", "close|0",
    ]
    reset_id = [c for c in calls if c.startswith("reset|") and c != "reset|nil"]
    assert len(reset_id) == 1
    expected[expected.index("reset|%s")] = reset_id[0]
    assert calls == expected


# hook.forward keeps what it would forward in the global `seen`, and answers for the smart host
SEE_FORWARDED = """
    function hook.forward(path)
        local f = io.open(path, "rb"); seen = f:read("*a"); f:close()
        return "250 ok"
    end
"""


def test_header_edits_reach_the_spool_before_forward(tmp_path):
    harness = Harness(tmp_path, SEE_FORWARDED + """
        function hook.eoh()
            header.insert("Received: by test", 1)
            header.modify("Subject", 1, "[tagged] " .. select(2, header.find("subject", 1)))
            header.delete("X-Drop", 1)
        end
    """)
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: hi\r\nX-Drop: me\r\nFrom: a@b.cd\r\n\r\nbody\r\n.\r\n") == "250 ok\r\n"
    assert harness.worker.engine.lua.eval("seen") == (
        b"Received: by test\r\nSubject: [tagged] hi\r\nFrom: a@b.cd\r\n\r\nbody\r\n")


def test_header_edits_of_a_message_without_body_keep_each_header_once(tmp_path):
    """No blank line: the whole message is its header section, and nothing follows it."""
    harness = Harness(tmp_path, SEE_FORWARDED + """
        function hook.dot() header.add("X-Tag: yes") end
    """)
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: hi\r\nFrom: a@b.cd\r\n.\r\n") == "250 ok\r\n"
    assert harness.worker.engine.lua.eval("seen") == b"Subject: hi\r\nFrom: a@b.cd\r\nX-Tag: yes\r\n\r\n"


SPOOL_WATCH = """
    function hook.eoh()
        if want_path then seen_path = client.msg_file end
        local f = seen_path and io.open(seen_path, "rb")
        on_disk_at_eoh = f ~= nil
        if f then f:close() end
    end
    function hook.reset() want_path = false end
"""


def spool_files(harness):
    folder = harness.options.get("spool-dir")
    return [name for name in os.listdir(folder) if not name.startswith(".")]


def transaction_reply(client, message, attempts=100):
    """MAIL, RCPT, DATA, then `message` (with its dot): the end-of-data reply, waited for while
    the loop runs (forwarding and service calls answer later)."""
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    reply = client.send(message, settle=0.2)
    for _ in range(attempts):
        if reply:
            break
        reply = client.send(b"", settle=0.05)
    return reply


def test_a_small_message_no_hook_reads_is_forwarded_from_memory(tmp_path):
    """The spool folder does not even exist: any attempt to write a file would fail (451)."""
    with RecordingSink() as sink:
        harness = Harness(tmp_path, SPOOL_WATCH, smtp_smart_host="127.0.0.1:%d" % sink.port,
                          spool_dir=str(tmp_path / "missing"))
        client = helo(harness)
        reply = transaction_reply(client, "Subject: m\r\n\r\nbody\r\n.\r\n")
        assert reply.startswith("250") and sink.messages[-1].data == b"Subject: m\r\n\r\nbody\r\n"
        assert harness.worker.engine.lua.eval("on_disk_at_eoh") is False


def test_the_spool_file_is_written_when_a_hook_opens_its_path(tmp_path):
    harness = Harness(tmp_path, """
        function hook.dot(path)
            local untouched = io.open(path .. ".other", "rb")
            local f = io.open(path, "rb"); local text = f:read("*a"); f:close()
            return "250 read " .. #text .. " " .. tostring(untouched)
        end
    """)
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: m\r\n\r\nbody\r\n.\r\n") == "250 read 20 nil\r\n"
    assert spool_files(harness) == []


def test_a_spool_file_that_cannot_be_written_fails_the_open_not_the_server(tmp_path):
    harness = Harness(tmp_path, """
        function hook.dot(path) return "451 open: " .. tostring(io.open(path, "rb")) end
    """, spool_dir=str(tmp_path / "missing"))
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: m\r\n\r\nbody\r\n.\r\n") == "451 open: nil\r\n"
    assert "No such file or directory" in harness.log


def test_opening_client_msg_file_during_data_writes_the_spool_file_at_once(tmp_path):
    harness = Harness(tmp_path, SPOOL_WATCH + """
        function hook.forward(path)
            local f = io.open(path, "rb"); forwarded = f:read("*a"); f:close()
            return "250 taken"
        end
    """)
    client = helo(harness)
    harness.worker.engine.lua.execute("want_path = true")   # after HELO's hook.reset
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: m\r\n\r\nbody\r\n.\r\n") == "250 taken\r\n"
    lua = harness.worker.engine.lua
    assert lua.eval("on_disk_at_eoh") is True
    assert lua.eval("seen_path").startswith(harness.options.get("spool-dir").encode())
    assert lua.eval("forwarded") == b"Subject: m\r\n\r\nbody\r\n"
    assert spool_files(harness) == []          # removed at the end of the transaction


def test_after_a_scanner_read_the_file_edits_reach_the_smart_host_from_memory(tmp_path):
    """service.clamd needs the file (clamd opens it), but it only reads it: the header edits
    after it go to the memory copy, which the smart host gets (a closed clamd port: the scan
    fails at once, the file was written all the same)."""
    with RecordingSink() as sink:
        harness = Harness(tmp_path, """
            function hook.dot(path)
                service.clamd(path, "127.0.0.1:1", 5)
                service.wait(1)
                header.add("X-Scanned: yes")
            end
        """, smtp_smart_host="127.0.0.1:%d" % sink.port)
        client = helo(harness)
        reply = transaction_reply(client, "Subject: m\r\n\r\nbody\r\n.\r\n")
        assert reply.startswith("250")
        assert sink.messages[-1].data == b"Subject: m\r\nX-Scanned: yes\r\n\r\nbody\r\n"
        assert "clamd" in harness.log            # it was tried: the file existed for it
        assert spool_files(harness) == []


def test_a_hook_opening_the_path_after_a_scanner_read_and_edits_sees_the_edits(tmp_path):
    harness = Harness(tmp_path, SEE_FORWARDED + """
        function hook.dot(path)
            service.spamd(path, "127.0.0.1:1", "CHECK", nil, 5)
            service.wait(1)
            header.insert("X-Spam: checked", 1)
        end
    """)
    client = helo(harness)
    reply = transaction_reply(client, "Subject: m\r\n\r\nbody\r\n.\r\n")
    assert reply == "250 ok\r\n"
    assert harness.worker.engine.lua.eval("seen") == b"X-Spam: checked\r\nSubject: m\r\n\r\nbody\r\n"
    assert spool_files(harness) == []


def test_scanners_of_a_message_in_memory_need_a_file_only_for_a_local_clamd(tmp_path, spamd, clamd):
    """spamd gets the bytes over its socket: no spool file (a file create and unlink saved);
    the local clamd reads the file itself, which is written when it has connected."""
    from tests.support.clamd import EICAR
    from tests.support.spamd import GTUBE
    harness = Harness(tmp_path, """
        function hook.dot(path)
            service.spamd(path, "127.0.0.1:%d", "CHECK", nil, 60)
            files_after_spamd = spool_file_count()
            local spam = service.wait(1).spamd
            service.clamd(path, "%s", 30)
            local virus = service.wait(1).clamd
            return "550 " .. tostring(spam.score >= 1000) .. " " .. tostring(virus.is_infected)
        end
    """ % (spamd.port, clamd.socket_path))
    harness.worker.engine.lua.globals().spool_file_count = lambda: len(spool_files(harness))
    client = helo(harness)
    message = b"Subject: both\r\n\r\n" + GTUBE + b"\r\n" + EICAR + b"\r\n.\r\n"
    reply = transaction_reply(client, message, attempts=1200)
    assert reply == "550 true true\r\n"
    assert harness.worker.engine.lua.eval("files_after_spamd") == 0
    assert spool_files(harness) == []


@pytest.mark.parametrize("memory_kb", [0, 1])
def test_a_message_over_spool_memory_goes_to_disk_while_it_arrives(tmp_path, memory_kb):
    harness = Harness(tmp_path, "function hook.body(line) end", spool_memory=memory_kb)
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    client.send("Subject: big\r\n\r\n" + "x" * 2000 + "\r\n")
    assert len(spool_files(harness)) == 1
    client.send(".\r\n")
    assert spool_files(harness) == []


def test_a_command_naming_the_spool_file_finds_it_written(tmp_path):
    harness = Harness(tmp_path, """
        function hook.dot(path)
            local status = os.execute("test -s '" .. path .. "'")   -- io.popen: not in this Lua build
            return "250 status " .. status
        end
    """)
    client = helo(harness)
    client.send("MAIL FROM:<a@b.cd>\r\nRCPT TO:<x@y.zz>\r\nDATA\r\n")
    assert client.send("Subject: m\r\n\r\nbody\r\n.\r\n") == "250 status 0\r\n"


# -- input in pieces ------------------------------------------------------------------------
# a client's writes, each waiting for its reply
SESSION_WRITES = [b"EHLO client.example\r\n", b"MAIL FROM:<a@x.org>\r\n", b"RCPT TO:<b@y.org>\r\n",
                  b"DATA\r\n", b"Subject: s\r\n\r\nline\r\n..dot\r\nbare\rCR\r\n.\r\n", b"NOOP\r\n",
                  b"QUIT\r\n"]


@pytest.mark.timeout(60)
def test_a_session_fed_one_byte_at_a_time_gets_the_same_replies():
    """Every command line and the message arrive in one-byte pieces: each partial line and a
    dot that may end the message wait for more input (they used to make the dialogue spin
    for ever), and the replies are those of the same session sent in one piece."""
    whole = "".join(replies_in_pieces(QUIET, [[write] for write in SESSION_WRITES]))
    everything = b"".join(SESSION_WRITES)
    bytewise = "".join(replies_in_pieces(QUIET, [[everything[i:i + 1] for i in range(len(everything))]]))
    assert bytewise == whole
    assert whole.count("\r\n250 ") == 4 and "\r\n221 " in whole


@pytest.mark.timeout(30)
def test_a_partial_line_then_end_of_input_closes_the_session(harness):
    client = harness.connect()
    client.new_output()
    assert client.send("QUI") == ""
    client.close_input()
    assert client.closed
