"""Smart hosts for tests.

SmtpSink: Postfix's real smtp-sink (Debian postfix, unpacked, no daemon) in its own
process on a free port, dumping every message into a folder (`-d`); `messages()` reads the
dumps back. Make it fail with its own options through `extra` (see `man smtp-sink`):
`-r RCPT` soft-rejects (450), `-f DATA` hard-rejects (500), `-Q DATA` answers 421 and
disconnects, `-q .` disconnects without answering the dot, `-w 5` waits before answering
DATA, `-A 0` answers 550 right after 354, `-p` stops advertising PIPELINING.

RecordingSink: a small SMTP server in a thread, for what a real server will not do on
demand and for byte-exact recording. It records each transaction (EHLO name, the MAIL and
RCPT arguments, the DATA bytes exactly as they crossed the wire and un-stuffed) and checks
the client: `violations` lists commands sent ahead of a reply without PIPELINING. Modes:

  accept               every step succeeds
  refuse               nothing listens (the port is bound but not listening: RST)
  hang                 accepts the connection, never says a word
  greeting-421         greets with 421 and closes
  garbage-greeting     greets with something that is not SMTP
  garbage              a normal greeting and EHLO, then nonsense in reply to MAIL
  ehlo-unknown         502 to EHLO (the client must fall back to HELO)
  reject-mail          553 at MAIL
  reject-rcpt          550 at every RCPT
  tempfail-rcpt        451 at every RCPT
  drop-at-rcpt         closes the connection at the second RCPT
  reject-data-command  554 to DATA itself
  reject-data          554 after the message
  drop-in-data         closes the connection after the first line of the message
  stall-in-data        stops reading after 354 (tiny receive buffer): the client's writes stall
  no-dot-reply         reads the whole message, never answers the dot
  slow                 waits `delay` seconds before every reply

`rcpt_replies` ({address: reply line}) answers chosen recipients specially (e.g. 251, 550).

For connection reuse (any mode): every Envelope records the number of the `connection` it
came on (1, 2, ... in accept order; `per_connection()` counts messages per connection).
`stale_after=N` makes a connection that has seen N MAIL commands treat the next MAIL as a
client on a connection the server dropped meanwhile: `stale="eof"` closes without a word,
`"reset"` closes with a RST, `"421"` answers 421 and closes, `"hang"` never answers.
`idle_close=seconds` closes a connection left idle that long outside a transaction, saying
421 first (as Postfix smtpd does at its timeout). `quits()` counts QUIT commands.
"""
import glob
import os
import pwd
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

from .debian import postfix_env, smtp_sink_path
from .net import ThreadedListener, free_port, stop_process, wait_for_port


def _bracketed(host):
    return "[%s]" % host if ":" in host else host


@dataclass
class Envelope:
    sender: bytes = b""
    recipients: list = field(default_factory=list)
    data: bytes = b""             # the message, un-stuffed, CRLF lines
    helo: bytes = b""
    mail_args: bytes = b""        # everything after MAIL FROM: (path and parameters)
    rcpt_args: list = field(default_factory=list)
    wire: bytes = b""             # DATA content exactly as received, terminator included
    pipelined: bool = False       # RCPT/DATA arrived before MAIL had been answered
    connection: int = 0           # RecordingSink: which connection (1, 2, ... in accept order)


class SmtpSink:
    """Postfix smtp-sink on `host` (127.0.0.1 or ::1) and a free port; stop by PID.
    dump=False keeps no messages (for benchmarks: the disk would be what is measured)."""

    def __init__(self, tmp_path, extra=(), host="127.0.0.1", dump=True):
        self.host = host
        self.port = free_port()
        self.dump = os.path.join(str(tmp_path), "sink-%d" % self.port)
        os.makedirs(self.dump, exist_ok=True)
        user = ["-u", pwd.getpwuid(os.geteuid()).pw_name] if os.geteuid() == 0 else []
        dumping = ["-d", os.path.join(self.dump, "%Y%m%d%H%M%S.")] if dump else []
        self.command = [smtp_sink_path(), *user, *dumping, *extra,
                        "%s:%d" % (_bracketed(host), self.port), "256"]
        self.process = None

    @property
    def address(self):
        return "%s:%d" % (_bracketed(self.host), self.port)

    def __enter__(self):
        self.process = subprocess.Popen(self.command, env=postfix_env(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, host=self.host, process=self.process)
        except Exception:
            stop_process(self.process)
            raise
        return self

    def __exit__(self, *exc):
        stop_process(self.process)

    def _files(self):
        paths = [path for path in glob.glob(os.path.join(self.dump, "*")) if os.path.isfile(path)]
        return sorted(paths, key=lambda path: (os.path.getmtime(path), path))

    def message_count(self):
        return len(self._files())

    def wait_for(self, count, timeout=10.0):
        """Wait until `count` messages are dumped (smtp-sink writes them as they arrive)."""
        deadline = time.monotonic() + timeout
        while self.message_count() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.message_count() >= count

    def messages(self):
        """The dumped transactions as Envelopes. smtp-sink stores lines with LF ends after
        its own X-* and Received: headers, and one empty line after the message; the data
        is given back with CRLF ends (exact for messages whose lines all end in CRLF)."""
        return [_parse_dump(open(path, "rb").read()) for path in self._files()]


def _parse_dump(dump):
    envelope = Envelope()
    lines = dump.split(b"\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        name, _, value = line.partition(b": ")
        if name == b"X-Helo-Args":
            envelope.helo = value
        elif name == b"X-Mail-Args":
            envelope.mail_args = value
            envelope.sender = _path(value)
        elif name == b"X-Rcpt-Args":
            envelope.rcpt_args.append(value)
            envelope.recipients.append(_path(value))
        elif name == b"Received":
            index += 2                    # its two continuation lines end smtp-sink's part
            break
    body = lines[index:]
    if body and body[-1] == b"":
        body = body[:-1]                  # the split after the final LF
    if body and body[-1] == b"":
        body = body[:-1]                  # the empty line smtp-sink appends
    envelope.data = b"".join(line + b"\r\n" for line in body)
    return envelope


class RecordingSink(ThreadedListener):
    def __init__(self, mode="accept", host="127.0.0.1", pipelining=True, size=None, delay=0.0,
                 rcpt_replies=None, stale_after=None, stale="eof", idle_close=None):
        self.mode = mode
        self.stale_after = stale_after
        self.stale = stale
        self.idle_close = idle_close
        self.host = host
        self.pipelining = pipelining
        self.size = size                  # advertise SIZE (0: without a limit); None: not at all
        self.delay = delay
        self.rcpt_replies = dict(rcpt_replies or {})
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.messages = []                # accepted transactions (Envelope)
        self.transactions = []            # every transaction that reached MAIL
        self.commands = []                # every command line received, in order
        self.violations = []              # commands sent early without PIPELINING
        self.connections = 0
        self.stale_closes = 0             # connections ended by stale_after
        self.idle_closes = 0              # connections ended by idle_close
        self._stop = threading.Event()
        self._listener = socket.socket(self.family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self.port = self._listener.getsockname()[1]
        self._threads = []

    @property
    def address(self):
        return "%s:%d" % (_bracketed(self.host), self.port)

    def __enter__(self):
        if self.mode == "refuse":
            return self                   # bound, not listening: connections are refused
        if self.mode == "stall-in-data":
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._listener.listen(64)
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def per_connection(self):
        """Accepted messages per connection, in connection order (connections without
        an accepted message left out)."""
        counts = {}
        for envelope in self.messages:
            counts[envelope.connection] = counts.get(envelope.connection, 0) + 1
        return [counts[number] for number in sorted(counts)]

    def quits(self):
        return sum(1 for line in self.commands if line[:4].upper() == b"QUIT")

    # -- one connection ------------------------------------------------------------------
    def _connection(self, conn, number):
        with conn:
            conn.settimeout(0.1)          # wakes up now and then to notice the sink stopping
            try:
                _Session(self, conn, number).run()
            except (OSError, _Closed):
                pass


class _Closed(Exception):
    pass


class _Session:
    def __init__(self, sink, conn, number=0):
        self.sink = sink
        self.conn = conn
        self.number = number
        self.buffer = bytearray()
        self.mode = sink.mode
        self.envelope = None
        self.helo = b""
        self.mails = 0                    # MAIL commands seen on this connection
        self.idle_limit = None            # idle_close applies (between transactions)

    def say(self, reply):
        if self.sink.delay:
            time.sleep(self.sink.delay)
        self.conn.sendall(reply)

    def readline(self):
        """One line (LF included) from our own buffer, so input_waiting can tell what came."""
        buffer = self.buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end + 1])
                del buffer[:end + 1]
                return line
            try:
                data = self.conn.recv(65536)
            except socket.timeout:
                if self.sink._stop.is_set():
                    raise _Closed()
                if self.idle_limit is not None and time.monotonic() > self.idle_limit:
                    self.sink.idle_closes += 1
                    self.conn.sendall(b"421 4.4.2 sink.test idle too long\r\n")
                    raise _Closed()
                continue
            if not data:
                raise _Closed()
            buffer += data

    def input_waiting(self):
        """True when more input is here already: the client did not wait for our reply."""
        if self.buffer:
            return True
        ready, _, _ = select.select([self.conn], [], [], 0)
        return bool(ready)

    def run(self):
        mode = self.mode
        if mode == "hang":
            self.sink._stop.wait(30)
            return
        greeting = {"greeting-421": b"421 4.3.2 busy, try later\r\n",
                    "garbage-greeting": b"HTTP/1.0 400 Bad Request\r\n"}.get(mode, b"220 sink.test ESMTP\r\n")
        self.say(greeting)
        if mode in ("greeting-421", "garbage-greeting"):
            return
        while True:
            idle_close = self.sink.idle_close
            if idle_close is not None and self.helo and self.envelope is None:
                self.idle_limit = time.monotonic() + idle_close
            line = self.readline()
            self.idle_limit = None
            self.sink.commands.append(line)
            early = self.input_waiting()
            verb = line[:4].upper()
            if early and not self.sink.pipelining and verb not in (b"QUIT",):
                self.sink.violations.append(line)
            handler = getattr(self, "on_" + verb.decode("latin-1").strip().lower(), None)
            if handler is None:
                self.say(b"502 5.5.1 unknown command\r\n")
                continue
            if handler(line, early) is False:
                return

    # -- commands ------------------------------------------------------------------------
    def on_ehlo(self, line, early):
        if self.mode == "ehlo-unknown":
            self.say(b"502 5.5.1 EHLO not here\r\n")
            return
        self.helo = line[5:].strip()
        lines = [b"sink.test"]
        if self.sink.pipelining:
            lines.append(b"PIPELINING")
        if self.sink.size is not None:
            lines.append(b"SIZE %d" % self.sink.size if self.sink.size else b"SIZE")
        lines += [b"8BITMIME", b"ENHANCEDSTATUSCODES"]
        self.say(b"".join(b"250%s%s\r\n" % (b" " if i == len(lines) - 1 else b"-", text)
                          for i, text in enumerate(lines)))

    def on_helo(self, line, early):
        self.helo = line[5:].strip()
        self.say(b"250 sink.test\r\n")

    def on_mail(self, line, early):
        self.mails += 1
        if self.sink.stale_after is not None and self.mails > self.sink.stale_after:
            self.sink.stale_closes += 1
            if self.sink.stale == "421":
                self.conn.sendall(b"421 4.4.2 sink.test closing: gone while you were away\r\n")
            elif self.sink.stale == "reset":
                self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.sink.stale == "hang":
                self.sink._stop.wait(30)
            return False
        if self.mode == "garbage":
            self.say(b"hello there, how are you\r\n")
            return
        if self.mode == "reject-mail":
            self.envelope = None
            self.say(b"553 5.1.8 sender refused\r\n")
            return
        args = line[10:].strip()
        self.envelope = Envelope(sender=_path(args), helo=self.helo, mail_args=args, pipelined=early,
                                 connection=self.number)
        self.sink.transactions.append(self.envelope)
        self.say(b"250 ok\r\n")

    def on_rcpt(self, line, early):
        envelope = self.envelope
        if envelope is None:
            self.say(b"503 5.5.1 need MAIL first\r\n")
            return
        args = line[8:].strip()
        address = _path(args)
        envelope.rcpt_args.append(args)
        if self.mode == "drop-at-rcpt" and len(envelope.rcpt_args) >= 2:
            return False
        special = self.sink.rcpt_replies.get(address)
        if special is not None:
            if special[:1] == b"2":
                envelope.recipients.append(address)
            self.say(special.rstrip(b"\r\n") + b"\r\n")
        elif self.mode == "tempfail-rcpt":
            self.say(b"451 4.3.0 try later\r\n")
        elif self.mode == "reject-rcpt":
            self.say(b"550 5.1.1 no such user\r\n")
        else:
            envelope.recipients.append(address)
            self.say(b"250 ok\r\n")

    def on_data(self, line, early):
        envelope = self.envelope
        if envelope is None or not envelope.recipients:
            self.say(b"554 5.5.1 no valid recipients\r\n")
            return
        if self.mode == "reject-data-command":
            self.say(b"554 5.7.1 no data today\r\n")
            return
        self.say(b"354 go ahead\r\n")
        if self.mode == "stall-in-data":
            self.sink._stop.wait(30)
            return False
        if not self.read_message(envelope):
            return False
        self.envelope = None
        if self.mode == "no-dot-reply":
            self.sink._stop.wait(30)
            return False
        if self.mode == "reject-data":
            self.say(b"554 5.7.1 no thanks\r\n")
        else:
            self.sink.messages.append(envelope)
            self.say(b"250 queued\r\n")

    def read_message(self, envelope):
        wire, data = [], []
        while True:
            line = self.readline()
            wire.append(line)
            if self.mode == "drop-in-data":
                self.conn.shutdown(socket.SHUT_RDWR)
                return False
            if line == b".\r\n":
                envelope.wire = b"".join(wire)
                envelope.data = b"".join(data)
                return True
            data.append(line[1:] if line.startswith(b".") else line)

    def on_rset(self, line, early):
        self.envelope = None
        self.say(b"250 2.0.0 ok\r\n")

    def on_noop(self, line, early):
        self.say(b"250 2.0.0 ok\r\n")

    def on_quit(self, line, early):
        self.say(b"221 2.0.0 bye\r\n")
        return False


def _path(args):
    start, end = args.find(b"<"), args.find(b">")
    if start < 0 or end < start:
        return args.split(b" ")[0]
    return args[start + 1:end]
