"""An SMTP client on the loop: smart-host forwarding and smtp.sendfile/sendstring.

`send_mail(...)` delivers one message (or only probes recipients: call-ahead) and reports a
`Result` through a callback; it never raises into the caller and every wait has a deadline.
The dialogue is a generator driven by `_Dialogue`: it yields ("reply", timeout) to read a
whole (multi-line) reply or ("send", data) to write and wait until the data is sent.

Spool files hold the real message (CRLF, unstuffed), so the client dot-stuffs on the way out
and makes sure the data ends with CRLF before the final dot. Files are streamed in blocks.
"""
from collections import namedtuple

from .netclient import Stream

Timeouts = namedtuple("Timeouts", "connect command dot")

BLOCK = 256 * 1024
# smtp.code pseudo codes of the original for failures that are not SMTP replies
ERROR, ERROR_CONNECT, ERROR_TIMEOUT, ERROR_EOF, ERROR_IO, ERROR_FILE = 100, 110, 120, 130, 100, 140


class Result:
    """Outcome of one delivery attempt."""

    def __init__(self):
        self.code = ERROR_CONNECT
        self.text = b""
        self.recipient_replies = []
        self.accepted = 0
        self.host = None
        self.error = None          # transport problem in words, or None

    @property
    def ok(self):
        return 200 <= self.code <= 299

    def describe(self):
        where = self.host or "no host"
        if self.error:
            return "%s: %s (code %d)" % (where, self.error, self.code)
        return "%s: %s" % (where, self.text.decode("latin-1", "replace").strip())


class _Failure(Exception):
    def __init__(self, code, error):
        super().__init__(error)
        self.code = code
        self.error = error


def send_mail(loop, hosts, sender, recipients, source, timeouts, helo_name, on_done):
    """Deliver to the first host that accepts a connection. `source`: a spool file path
    (str), the message (bytes) or None (call-ahead: stop after RCPT). Returns a handle with
    cancel(); on_done(Result) is called once, unless cancelled."""
    dialogue = _Dialogue(loop, list(hosts), sender, list(recipients), source, timeouts,
                         helo_name, on_done)
    dialogue.start()
    return dialogue


class _Dialogue:
    def __init__(self, loop, hosts, sender, recipients, source, timeouts, helo_name, on_done):
        self.loop = loop
        self.hosts = hosts
        self.sender = sender
        self.recipients = recipients
        self.source = source
        self.timeouts = timeouts
        self.helo_name = helo_name.encode() if isinstance(helo_name, str) else helo_name
        self.on_done = on_done
        self.result = Result()
        self.result.recipient_replies = list(recipients)
        self.stream = None
        self.connecting = None
        self.steps = None
        self.reply_lines = []
        self.current_timeout = timeouts.command
        self.finished = False

    # -- driving ---------------------------------------------------------------------------
    def start(self):
        if not self.hosts:
            self.finish(ERROR_CONNECT, "no host given")
            return
        self.connecting = Stream.connect(self.loop, self.hosts, 25, self.timeouts.connect, self.connected)

    def connected(self, stream, reason=None):
        self.connecting = None
        if self.finished:
            if stream is not None:
                stream.close()
            return
        if stream is None:
            self.finish(451, reason or "connect failed")  # no host reachable: try again later
            return
        self.stream = stream
        self.result.host = stream.host
        self.steps = self.conversation()
        self.advance(None)

    def advance(self, value):
        while not self.finished:
            try:
                kind, argument = self.steps.send(value)
            except StopIteration:
                return
            except _Failure as failure:
                self.finish(failure.code, failure.error)
                return
            if kind == "reply":
                self.reply_lines = []
                self.stream.read_line(self.on_line, argument)
            else:
                self.stream.write(argument, self.on_sent)
            return

    def on_line(self, line):
        if self.finished:
            return
        if line is None:
            error = self.stream.error or "connection closed"
            code = ERROR_TIMEOUT if error == "timed out" else ERROR_EOF
            self.fail_step(code, error)
            return
        self.reply_lines.append(line)
        if len(line) >= 4 and line[3:4] == b"-":
            self.stream.read_line(self.on_line, self.current_timeout)
            return
        reply = b"".join(self.reply_lines)
        self.advance(reply)

    def on_sent(self):
        self.advance(None)

    def fail_step(self, code, error):
        try:
            self.steps.throw(_Failure(code, error))
        except (_Failure, StopIteration) as failure:
            self.finish(getattr(failure, "code", code), getattr(failure, "error", error))

    def finish(self, code, error=None, text=b""):
        if self.finished:
            return
        self.finished = True
        self.result.code = code
        self.result.error = error
        if text:
            self.result.text = text
        stream, self.stream = self.stream, None
        if stream is not None:
            if error is None and not stream.closed:
                _say_goodbye(stream, self.timeouts.command)
            else:
                stream.close()
        self.on_done(self.result)

    def cancel(self):
        """The client went away: drop the delivery without reporting."""
        self.finished = True
        if self.connecting is not None:
            self.connecting.cancel()
        if self.stream is not None:
            self.stream.close()

    # -- the SMTP conversation ----------------------------------------------------------------
    def command(self, data, timeout=None):
        """Send a command and read its reply -> (code, reply)."""
        self.current_timeout = timeout or self.timeouts.command
        yield "send", data
        reply = yield "reply", self.current_timeout
        return _code(reply), reply

    def conversation(self):
        result = self.result
        self.current_timeout = self.timeouts.command
        greeting = yield "reply", self.timeouts.command
        if _code(greeting) != 220:
            raise _Failure(_code(greeting) or ERROR, "greeting: %s" % _first_line(greeting))
        code, reply = yield from self.command(b"EHLO " + self.helo_name + b"\r\n")
        if code != 250:
            code, reply = yield from self.command(b"HELO " + self.helo_name + b"\r\n")
            if code != 250:
                self.finish(code, None, reply)
                return
        code, reply = yield from self.command(b"MAIL FROM:<" + self.sender + b">\r\n")
        if code != 250:
            self.finish(code, None, reply)
            return
        accepted = 0
        for index, recipient in enumerate(self.recipients):
            code, reply = yield from self.command(b"RCPT TO:<" + recipient + b">\r\n")
            result.recipient_replies[index] = _first_line(reply)
            if code in (250, 251):
                accepted += 1
        result.accepted = accepted
        if self.source is None or accepted == 0:  # call-ahead, or nobody to deliver to
            self.finish(code, None, reply)
            return
        code, reply = yield from self.command(b"DATA\r\n")
        if code != 354:
            self.finish(code, None, reply)
            return
        try:
            blocks = _message_blocks(self.source)
            for block in blocks:
                yield "send", block
        except OSError as exc:
            raise _Failure(ERROR_FILE, "reading the message: %s" % exc.strerror) from None
        self.current_timeout = self.timeouts.dot
        reply = yield "reply", self.timeouts.dot
        self.finish(_code(reply), None, reply)


def _say_goodbye(stream, timeout):
    """QUIT and wait for its reply before closing (closing with the reply unread would reset
    the connection). The result has been reported already; this only tidies up."""
    stream.write(b"QUIT\r\n")
    stream.read_line(lambda line: stream.close(), min(timeout, 10))


def _message_blocks(source):
    """The message dot-stuffed, ending in CRLF "." CRLF, in blocks of at most BLOCK bytes."""
    at_line_start = True
    last = b"\n"
    for block in _raw_blocks(source):
        if not block:
            continue
        stuffed = block.replace(b"\n.", b"\n..")
        if at_line_start and stuffed[:1] == b".":
            stuffed = b"." + stuffed
        at_line_start = block[-1:] == b"\n"
        last = block[-1:]
        yield stuffed
    yield (b".\r\n" if last == b"\n" else b"\r\n.\r\n")


def _raw_blocks(source):
    if isinstance(source, (bytes, bytearray)):
        for start in range(0, len(source), BLOCK):
            yield bytes(source[start:start + BLOCK])
        return
    with open(source, "rb") as handle:
        while True:
            block = handle.read(BLOCK)
            if not block:
                return
            yield block


def _code(reply):
    head = reply[:3]
    return int(head) if head.isdigit() else ERROR


def _first_line(reply):
    return reply.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
