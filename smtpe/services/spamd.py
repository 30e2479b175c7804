"""spamd client (original-behaviour.md §7.3, DECISIONS.md "Services").

Request: `<METHOD> SPAMC/1.5`, an exact `Content-length`, an optional `User`, a blank line,
then the message: `Return-Path: <sender>` when the sender is known (not for PROCESS), then
either the spool file as it is, or (when the caller passes the edited header list and the
spool file's body offset) those headers, a blank line and the body from the spool file. The reply is read to
EOF: `SPAMD/1.1 0 EX_OK`, headers (`Spam: True ; 7.2 / 5.0`, `Content-length`), a blank
line, and the method's output.

PROCESS returns the whole rewritten message: it replaces the file only when it arrived
complete (its length matches), through a temporary file renamed over the original, so a
failure leaves the message untouched. HEADERS only reports the rewritten header section.
"""
import os
import re

from . import Job, Message

DEFAULT_PORT = 783
DEFAULT_TIMEOUT = 120.0
METHODS = (b"CHECK", b"SYMBOLS", b"REPORT", b"REPORT_IFSPAM", b"PROCESS", b"HEADERS")
REPLY_LIMIT = 1 << 20  # besides the message itself for PROCESS/HEADERS
CRLF = b"\r\n"

_STATUS = re.compile(rb"SPAMD/[0-9.]+[ \t]+([0-9]+)[ \t]*(.*)")
_SPAM = re.compile(rb"^spam:[ \t]*(\w+)[ \t]*;[ \t]*(-?[0-9.]+)[ \t]*/[ \t]*(-?[0-9.]+)",
                   re.IGNORECASE | re.MULTILINE)
_LENGTH = re.compile(rb"^content-length:[ \t]*([0-9]+)", re.IGNORECASE | re.MULTILINE)


class SpamdJob(Job):
    service_name = "spamd"
    default_port = DEFAULT_PORT

    def __init__(self, loop, path, hosts, timeout, on_done, method=b"CHECK", user=None,
                 headers=None, body_offset=None, return_path=None, on_processed=None,
                 data=None):
        """`headers`/`body_offset`: send this header list and the file from body_offset
        instead of the whole file. `on_processed(headers, body_offset)` is called after
        PROCESS replaced the file, with the new message's header list and body offset."""
        super().__init__(loop, hosts, timeout, on_done)
        if method not in METHODS:
            raise ValueError("unknown spamd method %r" % method)
        self.path = os.fsencode(path)
        self.message = Message(self.path, data)   # data: the message in memory (not PROCESS)
        self.method = method
        self.user = user
        self.on_processed = on_processed
        self.result.update(file=self.path, is_spam=False)
        # The envelope sender helps scoring; PROCESS leaves it out, or it would end up in the
        # rewritten message (spamd even copies it into the report's attached original).
        self.return_line = None
        if return_path is not None and method != b"PROCESS":
            self.return_line = b"Return-Path: <" + return_path + b">"
        self.parts, self.length = self._message(headers, body_offset)

    def _message(self, headers, body_offset):
        """-> (parts to send, their exact total length)."""
        parts = [self.return_line + CRLF] if self.return_line is not None else []
        start = 0
        if headers is not None and body_offset is not None:
            parts.append(b"".join(header + CRLF for header in headers) + CRLF)
            start = body_offset
        size = self.message.size()
        parts.append(self.message.slice(min(start, size)))
        return parts, sum(len(part) for part in parts[:-1]) + size - min(start, size)

    def exchange(self, stream):
        request = b"%s SPAMC/1.5\r\nContent-length: %d\r\n" % (self.method, self.length)
        if self.user:
            request += b"User: " + self.user + CRLF
        self.limit = REPLY_LIMIT + (self.length if self.method in (b"PROCESS", b"HEADERS") else 0)
        stream.read_until_eof(self.guard(self._replied), self.timeout, self.limit + 1)
        self.send_parts([request + CRLF] + self.parts, on_sent=stream.shutdown_write)

    def _replied(self, data):
        if data is None:
            self.fail(self.read_failed())
            return
        head, blank, body = data.partition(b"\r\n\r\n")
        status = _STATUS.match(head)
        if status is None:
            self.fail("not a spamd reply: %r" % data[:80])
            return
        if status.group(1) != b"0":
            self.fail("spamd replied %s" % head.split(b"\r\n")[0].decode("utf-8", "replace"))
            return
        fields = {"reply": data}
        spam = _SPAM.search(head)
        if spam is not None:
            fields["is_spam"] = spam.group(1).lower() in (b"true", b"yes")
            fields["score"] = float(spam.group(2))
            fields["threshold"] = float(spam.group(3))
        if len(data) > self.limit:
            fields["reply"] = data[:self.limit]
            if self.method in (b"PROCESS", b"HEADERS"):
                self.fail("reply longer than %d bytes" % self.limit)
                return
        if self.method == b"PROCESS":
            self._replace_file(head, blank, body, fields)
            return
        self.finish(**fields)

    def _replace_file(self, head, blank, body, fields):
        length = _LENGTH.search(head)
        if not blank or length is None or int(length.group(1)) != len(body):
            self.fail("incomplete PROCESS reply (%d bytes); the message is unchanged" % len(body))
            return
        temporary = self.path + b".spamd"
        try:
            with open(temporary, "wb") as handle:
                handle.write(body)
            # renamed over, never rewritten in place: smtpe.spool.Spool.snapshot relies on it
            os.replace(temporary, self.path)
        except OSError as exc:
            _unlink_quietly(temporary)
            self.fail("cannot replace %s: %s" % (self.path.decode("utf-8", "replace"), exc.strerror))
            return
        fields["reply"] = head + blank  # the message itself is in the file now
        if self.on_processed is not None:
            self.on_processed(*split_headers(body))
        self.finish(**fields)


def split_headers(message):
    """-> (header entries as header.* keeps them: folds kept, no final line end; offset of
    the body, just past the blank line, or the message length if there is none)."""
    entries = []
    position = 0
    while position < len(message):
        end = message.find(b"\n", position)
        end = len(message) if end < 0 else end + 1
        line = message[position:end]
        position = end
        if line in (b"\r\n", b"\n"):
            return _strip_ends(entries), position
        if line[:1] in (b" ", b"\t") and entries:
            entries[-1] += line  # a folded continuation stays inside its entry
        else:
            entries.append(line)
    return _strip_ends(entries), len(message)


def _strip_ends(entries):
    return [entry[:-2] if entry.endswith(CRLF) else entry.rstrip(b"\n") for entry in entries]


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
