"""`mime.parts` and `uri.found` scanned on demand (smtpe/api/mime.py) through real in-process
sessions (real Worker, Engine, Lua and spool): no MIME scan for a script that never reads
them; when read at or after the dot, exactly the tables a scan of the message as received
gives (the eager scan smtpe made before), whatever happened to the spool since: header edits,
spamd PROCESS, a message kept in its file, the end of the transaction."""
import base64
import hashlib
import os
import random
import time

import pytest

from smtpe._speedups import scanner as scanner_module
from smtpe._speedups.scanner import MessageScanner
from tests.support.inproc import Harness

PART_FIELDS = ("md5_encoded", "md5_decoded", "part_length", "body_length", "content_type",
               "content_transfer_encoding")
URI_FIELDS = ("uri_raw", "uri_decoded", "scheme", "scheme_info", "user_info", "host", "port",
              "path", "query", "fragment", "mime_part")

# `dump` renders both tables, one line per part and per URI (nil as "nil"), and counts every
# key of uri.found (the array of MD5 keys and the entries under those keys).
DUMP = """
local PART_FIELDS = { %s }
local URI_FIELDS = { %s }
local function fields(t, names)
    local out = {}
    for i, name in ipairs(names) do out[i] = tostring(t[name]) end
    return table.concat(out, "|")
end
function dump(parts, found)
    local lines = {}
    for i = 1, #parts do lines[#lines + 1] = "part " .. fields(parts[i], PART_FIELDS) end
    for _, key in ipairs(found) do
        lines[#lines + 1] = "uri " .. key .. " " .. fields(found[key], URI_FIELDS)
    end
    local keys = 0
    for _ in pairs(found) do keys = keys + 1 end
    lines[#lines + 1] = "keys " .. keys
    return table.concat(lines, "\\n")
end
seen = {}
function record(label, parts, found)
    seen[#seen + 1] = label .. "\\n" .. dump(parts, found)
end
""" % (", ".join('"%s"' % name for name in PART_FIELDS), ", ".join('"%s"' % name for name in URI_FIELDS))

FORWARD_OK = 'function hook.forward(path, sender, recipients) %s return "250 2.0.0 kept" end\n'


def attachment(size, seed):
    """Base64 of random bytes, in 76-column CRLF lines."""
    return base64.encodebytes(random.Random(seed).randbytes(size)).replace(b"\n", b"\r\n")


def attachment_md5(size, seed):
    return hashlib.md5(random.Random(seed).randbytes(size)).hexdigest()


def sample(attachment_size=3000):
    """Multipart: plain text with URIs (one line starting with a dot), quoted-printable HTML
    (a duplicate URI), base64 text with a URI, a base64 binary attachment."""
    encoded_text = base64.encodebytes(b"Encoded: see https://encoded.example.net/x?y=1 now\r\n")
    return (b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: links\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
            b"preamble\r\n"
            b"--outer\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            b"See http://www.example.com/a and mail bob@example.net.\r\n"
            b".hidden http://dot.example.com/after-unstuffing\r\n"
            b"--outer\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<a href=3D\"http://www.example.com/a\">x</a> <a href=3D\"ftp://files.example.com:2121/x\">y</a>\r\n"
            b"--outer\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + encoded_text.replace(b"\n", b"\r\n") +
            b"--outer\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment(attachment_size, 7) +
            b"--outer--\r\n")


def expected(message):
    """The dump of a full scan of `message` as DATA delivers it (what smtpe published at the
    dot before the scan was made on demand)."""
    scanner = MessageScanner()
    scanner.feed(message)
    scanner.finish()

    def text(value):
        return "nil" if value is None else value.decode("latin-1") if isinstance(value, bytes) else str(value)
    lines = ["part " + "|".join(text(part[name]) for name in PART_FIELDS) for part in scanner.parts]
    for uri in scanner.uris:
        lines.append("uri %s %s" % (hashlib.md5(uri["uri_raw"]).hexdigest(),
                                    "|".join(text(uri[name]) for name in URI_FIELDS)))
    lines.append("keys %d" % (2 * len(scanner.uris)))
    return "\n".join(lines)


def wire(message):
    """The message as DATA carries it: dot-stuffed, then the end line."""
    return b"".join(b"." + line if line.startswith(b".") else line
                    for line in message.splitlines(keepends=True)) + b".\r\n"


def deliver(client, message, wait_for="250 2.0.0 kept", seconds=0.0):
    client.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
    reply = client.send(wire(message))
    deadline = time.monotonic() + seconds
    while wait_for not in reply and time.monotonic() < deadline:
        client.harness.run(0.05)
        reply += client.new_output()
    assert wait_for in reply, reply
    return reply


def seen(harness):
    table = harness.worker.engine.lua.globals()[b"seen"]
    return [table[index].decode("latin-1") for index in range(1, len(table) + 1)]


def record(label):
    return 'record("%s", mime.parts, uri.found)' % label


def full_scans():
    return scanner_module.full_scans()


def files_open_under(folder):
    """Descriptors of this process open on files under `folder` (deleted ones included)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:              # the descriptor of the listing itself, gone by now
            continue
        if target.startswith(folder + os.sep):
            found.append(target)
    return found


def test_sample_exercises_every_kind_of_part():
    """The reference dump of the sample: five parts, the attachment decoded, the URIs of the
    plain, HTML and base64 text parts (the line that was dot-stuffed on the wire included)."""
    dump = expected(sample())
    assert dump.splitlines()[4].split("|")[1] == attachment_md5(3000, 7)   # md5_decoded
    assert [line.split("|")[4] for line in dump.splitlines() if line.startswith("part ")] == [
        'Content-Type: multipart/mixed; boundary="outer"',
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Type: text/html",
        "Content-Type: text/plain",
        'Content-Type: application/octet-stream; name="data.bin"']
    for host in ("www.example.com", "example.net", "dot.example.com", "files.example.com",
                 "encoded.example.net"):
        assert "|%s|" % host in dump


# -- (a) no reader, no scan -----------------------------------------------------------------
@pytest.mark.parametrize("spool_memory", [256, 0])
def test_a_script_that_never_reads_the_tables_costs_no_mime_scan(tmp_path, spool_memory):
    script = ("function hook.header(line) if line:find('^Subject:') then header.add('X-Seen: yes') end end\n"
              "function hook.body(line) end\n"
              "function hook.dot(path) end\n" + FORWARD_OK % "")
    harness = Harness(tmp_path, script, spool_memory=spool_memory)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    before = full_scans()
    for _ in range(3):
        deliver(client, sample())
    client.send("QUIT\r\n")
    assert full_scans() == before


def test_one_scan_per_message_however_often_the_tables_are_read(tmp_path):
    script = DUMP + ("function hook.dot(path) %s %s end\n" % (record("dot"), record("dot again"))
                     + FORWARD_OK % record("forward"))
    harness = Harness(tmp_path, script)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    before = full_scans()
    deliver(client, sample())
    deliver(client, sample(500))
    assert full_scans() == before + 2
    assert seen(harness) == ["%s\n%s" % (label, expected(message))
                             for message in (sample(), sample(500))
                             for label in ("dot", "dot again", "forward")]


# -- (b) read at or after the dot: the scan of the message as received ----------------------
@pytest.mark.parametrize("spool_memory", [256, 0])
@pytest.mark.parametrize("reader", ["dot", "forward", "reset"])
def test_tables_read_after_the_dot_are_the_scan_of_the_original(tmp_path, spool_memory, reader):
    """A header edit (made in hook.header, written to the spool after hook.dot) does not
    reach the tables, even when they are first read in hook.forward or hook.reset, after
    the spool was rewritten."""
    hooks = {"dot": "function hook.dot(path) %s end\n",
             "forward": FORWARD_OK,
             "reset": "function hook.reset() %s end\n"}
    script = DUMP + (
        "function hook.header(line)\n"
        "    if line:find('^Subject:') then\n"
        "        header.modify('Subject', 1, 'edited')\n"
        "        header.add('X-Policy: checked')\n"
        "    end\n"
        "end\n"
        "function hook.rset() %s end\n" % record("rset")
        + hooks[reader] % (
            "local f = io.open(client.msg_file, 'rb') spooled = f:read('*a') f:close() " + record(reader)))
    if reader != "forward":
        script += FORWARD_OK % ""
    harness = Harness(tmp_path, script, spool_memory=spool_memory)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample()
    deliver(client, message)
    client.send("RSET\r\n")                  # after the transaction: the tables stay
    want = expected(message)
    assert seen(harness) == [reader + "\n" + want, "rset\n" + want]
    spooled = harness.worker.engine.lua.globals()[b"spooled"]
    if reader == "dot":                      # before the spool rewrite
        assert spooled == message
    else:                                    # the tables' message is no longer in the spool
        assert b"X-Policy: checked\r\n" in spooled and b"Subject: edited\r\n" in spooled


@pytest.mark.parametrize("spool_memory", [256, 0])
def test_tables_first_read_when_the_client_leaves(tmp_path, spool_memory):
    """The spool is gone with the transaction; the tables still hold its message."""
    script = DUMP + FORWARD_OK % "" + "function hook.close() %s end\n" % record("close")
    harness = Harness(tmp_path, script, spool_memory=spool_memory)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample()
    deliver(client, message)
    client.send("QUIT\r\n")
    assert seen(harness) == ["close\n" + expected(message)]
    assert os.listdir(harness.spool_dir) == [] and files_open_under(harness.spool_dir) == []


def test_tables_are_empty_before_the_dot_and_fresh_for_each_transaction(tmp_path):
    script = DUMP + ("function hook.mail() %s end\n" % record("mail")
                     + "function hook.header(line) if line:find('^From:') then %s end end\n" % record("header")
                     + "function hook.dot(path) %s end\n" % record("dot") + FORWARD_OK % "")
    harness = Harness(tmp_path, script)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    first, second = sample(), b"From: carol@example.com\r\n\r\nonly http://second.example.com/ here\r\n"
    deliver(client, first)
    deliver(client, second)
    assert seen(harness) == ["mail\nkeys 0", "header\nkeys 0", "dot\n" + expected(first),
                             "mail\nkeys 0", "header\nkeys 0", "dot\n" + expected(second)]


# -- (c) a table a script holds from before the dot -----------------------------------------
def test_tables_grabbed_before_the_dot_are_filled_at_the_dot(tmp_path):
    script = DUMP + (
        "function hook.mail() early_parts, early_found = mime.parts, uri.found "
        "    early_count = #mime.parts + #uri.found end\n"
        "function hook.dot(path) same = rawequal(early_parts, mime.parts) and rawequal(early_found, uri.found) "
        "    record('held', early_parts, early_found) end\n" + FORWARD_OK % record("forward"))
    harness = Harness(tmp_path, script)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    before = full_scans()
    message = sample()
    deliver(client, message)
    assert full_scans() == before + 1
    lua_globals = harness.worker.engine.lua.globals()
    assert lua_globals[b"early_count"] == 0 and lua_globals[b"same"] is True
    assert seen(harness) == ["held\n" + expected(message), "forward\n" + expected(message)]


def test_only_uri_found_grabbed_before_the_dot(tmp_path):
    """A script that held uri.found alone (in a content hook) has both tables at the dot."""
    script = DUMP + (
        "function hook.eoh() early_found = uri.found end\n"
        "function hook.dot(path) record('held', mime.parts, early_found) end\n" + FORWARD_OK % "")
    harness = Harness(tmp_path, script)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample()
    deliver(client, message)
    assert seen(harness) == ["held\n" + expected(message)]


# -- (d) a message bigger than spool-memory, scanned from its file --------------------------
def test_a_message_kept_in_its_file_is_scanned_from_the_file(tmp_path):
    script = DUMP + ("function hook.header(line) if line:find('^To:') then header.add('X-Big: 1') end end\n"
                     + FORWARD_OK % record("forward"))
    harness = Harness(tmp_path, script, spool_memory=16)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample(150000)                 # about 200 KB: several scanner chunks
    assert len(message) > 3 * 65536
    deliver(client, message)
    assert seen(harness) == ["forward\n" + expected(message)]
    spool = harness.spool_dir
    client.send("QUIT\r\n")
    assert os.listdir(spool) == []
    assert files_open_under(spool) == []     # no snapshot left open


def test_an_unread_snapshot_is_let_go(tmp_path):
    """A message in its file that no hook scanned: its file is closed at the next MAIL and
    when the client leaves."""
    harness = Harness(tmp_path, FORWARD_OK % "", spool_memory=0)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    spool = harness.spool_dir
    deliver(client, sample())
    first = files_open_under(spool)
    assert len(first) == 1 and first[0].endswith(" (deleted)")   # kept for a late reader
    deliver(client, sample())
    second = files_open_under(spool)
    assert len(second) == 1 and second != first
    client.send("QUIT\r\n")
    assert files_open_under(spool) == []


# -- no spool: the scan runs as the message arrives -----------------------------------------
def test_without_a_spool_the_tables_are_still_filled(tmp_path):
    script = DUMP + ("function hook.dot(path) %s return '250 2.0.0 kept' end\n" % record("dot"))
    harness = Harness(tmp_path, script, spool_dir="")
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample()
    deliver(client, message)
    assert seen(harness) == ["dot\n" + expected(message)]


# -- spamd PROCESS replaces the spool file --------------------------------------------------
@pytest.mark.parametrize("spool_memory", [256, 0])
def test_spamd_process_does_not_change_the_tables(tmp_path, spamd, spool_memory):
    script = DUMP + (
        "function hook.dot(path)\n"
        "    service.spamd(path, '127.0.0.1:%d', 'PROCESS')\n"
        "    processed = service.wait(1).spamd\n"
        "end\n" % spamd.port
        + FORWARD_OK % ("local f = io.open(path, 'rb') spooled = f:read('*a') f:close() " + record("forward")))
    harness = Harness(tmp_path, script, spool_memory=spool_memory)
    client = harness.connect()
    client.send("EHLO client.example\r\n")
    message = sample()
    deliver(client, message, seconds=60)
    lua_globals = harness.worker.engine.lua.globals()
    assert lua_globals[b"processed"][b"error"] is None
    assert b"X-Spam-Status: " in lua_globals[b"spooled"]     # the file was replaced
    assert seen(harness) == ["forward\n" + expected(message)]
