# cython: wraparound=True
# (setup.py turns wraparound off for the index loops of the other modules; this one is
# Python-style code whose slices such as line[:-1] must keep their Python meaning)
"""An SMTP client on the loop: smart-host forwarding and smtp.sendfile/sendstring.

`send_mail(...)` delivers one message to the first host that greets, or only asks about
the recipients (call-ahead), and reports a `Result` through `on_done`: exactly once, never
from inside send_mail, never by raising. Every wait has a deadline: the connect, each reply,
the reply to the final dot, and a host that stops reading the message.

Compiled (Cython): the classes below are extension types with typed fields, which a
forwarded message reads and writes dozens of times; as plain Python the module cost about
47,000 instructions per message more (9% of workload b, tests/perf/README.md).

The dialogue is original-behaviour.md §5.1 with DECISIONS.md and these choices:
* The next host is tried when connecting fails *or the host does not greet with 220* (a
  421/554 greeting, silence, garbage, a closed connection): nothing has been said yet, so
  another host cannot get the message twice. After the greeting a failure ends the attempt.
* EHLO, then HELO when EHLO is not answered 250. The AUTH line is never replayed.
* `MAIL FROM:<sender>` carries `SIZE=` and `BODY=8BITMIME` only when the host advertises
  them: SIZE lets it refuse an oversized message before 10 MB cross the wire, and
  BODY=8BITMIME truthfully declares the 8-bit octets we pass through untouched.
* With PIPELINING advertised, MAIL, every RCPT and DATA go out in one write (RFC 2920) and
  the replies are read in order: two round trips fewer per message on the hot path.
* A recipient counts as accepted on 250 or 251: both promise delivery, and the API text
  speaks of "successful recipients accepted" (the original counted only 250).
* DATA is not sent when no recipient was accepted; the last RCPT reply is the result.
* Spool files hold the real message (CRLF lines, not dot-stuffed). It goes out dot-stuffed,
  bare CR or LF turned into CRLF (a bare LF before a dot could end the data early at a
  lenient host: SMTP smuggling), with a CRLF added when missing before the final dot. It
  is read and queued block by block as the socket drains: memory stays bounded.
* QUIT ends a finished dialogue; the result is reported without waiting for its reply.

Connection reuse (a pool per Loop, i.e. per worker; `close_idle(loop)` empties it):
* A connection goes back to the pool, idle and already greeted, for its exact host entry
  (and HELO name) instead of QUIT when its transaction ended cleanly: the reply to the
  final dot was read (whatever its code), or the transaction failed before the message
  (MAIL or every RCPT refused, DATA refused, a call-ahead) and a RSET was answered 250 --
  the result is reported before that RSET's reply, and a pipelined call-ahead carries its
  RSET in the MAIL/RCPT group. Never after a 421, a transport error, a timeout, anything
  unexpected, a 354 to a DATA that carried nothing, or a failed EHLO/HELO: those close.
* Failover order holds: send_mail takes an idle connection only to the *first* host of its
  list (the one it would try first), the most recently used one, and starts at MAIL. So
  only connections to that first host are pooled; one to a later host (the first one is
  down) is QUIT as before, and the next message tries the first host again.
* A reused connection may have died while idle. If the reply to its MAIL is missing (EOF,
  reset, write error, timeout, garbage) or is 421, nothing of the message has been sent:
  the delivery starts again once, from the first host, on fresh connections. Later
  failures are reported as on a fresh connection. The caller only ever sees the replies
  of a dialogue that carried its message (or of the fresh attempt).
* Bounds: POOL_MAX_IDLE idle connections per host entry (more are QUIT), POOL_IDLE_TIMEOUT
  seconds idle (then QUIT), POOL_MAX_MESSAGES transactions per connection (the last one
  pipelines QUIT with its message). Idle connections are watched: a host that closes one
  or says anything unasked (a 421 before closing) has it dropped from the pool at once.
"""
cimport cython

import functools
import os
import re
import socket
from collections import namedtuple

from .linereader import wire_encode
from ..hostlist import split_hosts
from .. import netclient
from .smtpsyntax import REPLY_CODES

cdef class _Connection
cdef class _Pool
cdef class _Message

Timeouts = namedtuple("Timeouts", "connect command dot")  # seconds

# smtp.code pseudo codes of the original for failures that are not SMTP replies
ERROR, ERROR_CONNECT, ERROR_TIMEOUT, ERROR_EOF, ERROR_IO = 100, 110, 120, 130, 140
NO_HOST = 451            # no host greeted us: try again later (the original's code)

DEFAULT_PORT = 25
BLOCK = 64 * 1024        # message bytes read per step
HIGH_WATER = 256 * 1024  # queued output above which we wait for the socket to drain
ONE_WRITE = 1024 * 1024  # a message in memory up to this size is encoded and written at once
LINE_LIMIT = 4096        # a longer reply line is garbage (RFC 5321 says 512)
MAX_REPLY_LINES = 200
GOODBYE_TIMEOUT = 5.0    # seconds we keep a connection open for the reply to QUIT

# The connection pool (read at each use, so tests may change them)
POOL_MAX_IDLE = 16       # idle connections kept per host entry and loop (0: no reuse)
POOL_IDLE_TIMEOUT = 5.0  # seconds a connection may stay idle (Postfix's own cache keeps 2 s;
                         # servers allow 300 s)
POOL_MAX_MESSAGES = 100  # transactions per connection: spreads load, no endless sessions

SEND_MESSAGE = object()  # what the dialogue yields to have the message sent
RETRY_FRESH = object()   # what it yields when a reused connection answered MAIL with 421
_NOTHING = object()
# A reply: "ddd-text" lines, then a "ddd text" line, each at most LINE_LIMIT bytes with
# its LF, at most MAX_REPLY_LINES lines.
_REPLY = re.compile(rb"(?:[2-5][0-9][0-9]-[^\n]{0,%d}\n){0,%d}[2-5][0-9][0-9](?:[ \r][^\n]{0,%d})?\n"
                    % (LINE_LIMIT - 5, MAX_REPLY_LINES - 1, LINE_LIMIT - 5))
_REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ \r-][^\n]*)?\n")
_TEXT_STARTS = (ord(" "), ord("\r"))   # what follows the code on a reply's last line


cdef class Result:
    """Outcome of one delivery attempt.

    code: the last reply's code, or a pseudo code (ERROR_* for a transport failure after the
    greeting, NO_HOST when no host greeted). text: that reply (bytes, CRLF lines; b"" for
    pseudo codes). recipient_replies: per recipient the first line of its RCPT reply (bytes,
    no CRLF), None when not answered or when MAIL failed. accepted: recipients answered 250
    or 251. mail_accepted: MAIL got 250. host: label of the host that greeted, None if none
    did. error: what went wrong below SMTP (str), None when every reply was read. stage:
    the step the result comes from (connect, greeting, EHLO, HELO, MAIL, RCPT, DATA,
    message, dot).
    """
    cdef public object code, text, recipient_replies, host, error, stage
    cdef public Py_ssize_t accepted
    cdef public bint mail_accepted

    def __init__(self, count):
        self.code = NO_HOST
        self.text = b""
        self.recipient_replies = [None] * count
        self.accepted = 0
        self.mail_accepted = False
        self.host = None
        self.error = None
        self.stage = "connect"

    @property
    def ok(self):
        return 200 <= self.code <= 299

    @property
    def transport_failed(self):
        return self.error is not None

    def describe(self):
        where = "%s: %s" % (self.host or "no host", self.stage)
        if self.error:
            return "%s: %s (code %d)" % (where, self.error, self.code)
        return "%s: %s" % (where, _first_line(self.text).decode("latin-1"))

    def __repr__(self):
        return "<Result %s>" % self.describe()


cdef class Reply:
    cdef public object code, text, stage

    def __init__(self, code, text, stage):
        self.code = code
        self.text = text
        self.stage = stage        # what it answers: greeting, EHLO, MAIL, RCPT, ...

    @property
    def first_line(self):
        return _first_line(self.text)


def send_mail(loop, hosts, sender, recipients, source, timeouts, helo_name, on_done, pipelining=True):
    """Deliver `source` from `sender` to `recipients` through the first host of `hosts` that
    greets. hosts: host strings (hostlist syntax) or one string listing them. sender,
    recipients: addresses without angle brackets (bytes or str; "" is the null sender).
    source: a spool file path (str), the message (bytes), or None for call-ahead (stop after
    RCPT). timeouts: a Timeouts. helo_name: our name for EHLO/HELO (None: this host's FQDN).
    pipelining=False never pipelines. Returns a handle whose cancel() abandons the delivery
    (on_done is then never called); otherwise on_done(Result) once, from the loop.
    An idle pooled connection to the first host is used when there is one (module doc)."""
    delivery = _Delivery(loop, hosts, sender, recipients, source, timeouts, helo_name, on_done, pipelining)
    # Started at once (a pooled connection gets its MAIL in this very turn); a failure found
    # before send_mail returns is reported on the next turn (see _report).
    delivery.starting = True
    delivery.start()
    delivery.starting = False
    return delivery


def _guarded(method):
    """A loop/stream callback of _Delivery: ignored once the delivery is over; a bug in it
    fails this delivery instead of escaping into the loop (the caller's own on_done may
    raise). Made once per method, not per delivery."""
    def call(self, *args):
        if self.finished:
            return
        try:
            method(self, *args)
        except Exception as exc:
            if self.finished:
                raise
            self._fail(ERROR, "internal error: %s: %s" % (type(exc).__name__, exc))
    return call


@cython.final
cdef class _Delivery:
    # Typed fields: the transaction reads and writes them dozens of times per message. The
    # steps only the client itself calls are cpdef: from the compiled code a C call (the
    # class is final), not a method lookup; callbacks handed to the loop stay def.
    cdef public Result result
    cdef public _Pool pool
    cdef public _Connection conn
    cdef public _Message message
    cdef public object loop, arguments, source, timeouts, on_done, hosts
    cdef public object first_entry, last_error, connector, stream, entry, steps
    cdef public object settled, timer, chunks, input
    cdef public Py_ssize_t stall_mark
    cdef public double reply_deadline
    cdef public object sender, recipients, helo
    cdef public Py_ssize_t attempt
    cdef public bint pipelining, finished, reusing, keep, rset_sent, saw_421, abort_data
    cdef public bint quit_sent, starting

    def __init__(self, loop, hosts, sender, recipients, source, timeouts, helo_name, on_done, pipelining):
        self.loop = loop
        self.arguments = (hosts, sender, recipients, helo_name)
        self.source = source
        self.timeouts = timeouts
        self.on_done = on_done
        self.pipelining = pipelining
        self.result = Result(0)       # sized once the recipients are checked
        self.finished = False
        self.pool = None
        self.hosts = []
        self.first_entry = None      # the host tried first: the only one whose connections are pooled
        self.last_error = "no host given"
        self.attempt = 0
        self.connector = None
        self.stream = None
        self.entry = None            # the host entry being tried (the pool's key)
        self.conn = None             # _Connection once EHLO/HELO succeeded (or taken from the pool)
        self.reusing = False         # a pooled connection whose reply to MAIL is awaited
        self.keep = False            # the connection may go back to the pool afterwards
        self.rset_sent = False       # RSET went out pipelined after a call-ahead's RCPTs
        self.saw_421 = False         # the host said it is closing: never pool
        self.message = None          # _Message, opened before connecting
        self.steps = None            # the dialogue generator
        self.settled = None          # a reply that decides the result if the host now drops us
        self.abort_data = False      # DATA got 354 but nothing will be sent: close, no QUIT
        self.quit_sent = False       # QUIT went out with the end of the message
        self.timer = None            # write-stall timer while the message is sent
        self.stall_mark = 0          # bytes queued when it was armed
        self.chunks = None
        # replies (see _want_reply)
        self.input = b""             # received and not yet taken as a reply
        self.reply_deadline = 0.0
        self.starting = False        # inside send_mail: a report must wait for the next turn

    # -- life cycle ----------------------------------------------------------------------
    def _start(self):
        hosts, sender, recipients, helo_name = self.arguments
        try:
            self.hosts = split_hosts(hosts)
            self.sender = _address(sender)
            self.recipients = [_address(recipient) for recipient in recipients]
            self.helo = _helo(helo_name)
        except (TypeError, ValueError) as exc:
            self._fail(ERROR, str(exc))
            return
        self.result.recipient_replies = [None] * len(self.recipients)
        if not self.recipients:
            self._fail(ERROR, "no recipients")
            return
        if self.source is not None:
            try:
                self.message = _Message(self.source)
            except (OSError, ValueError) as exc:
                self._fail(ERROR_IO, "reading the message: %s" % (getattr(exc, "strerror", None) or exc))
                return
        self.pool = _pool(self.loop)
        if self.hosts:
            self.first_entry = self.hosts[0]
            conn = self.pool.take(self.first_entry, self.helo)
            if conn is not None:
                self._reuse(conn)
                return
        self._next_host()

    start = _guarded(_start)

    def cancel(self):
        """The caller went away: drop the delivery without reporting."""
        self.on_done = None          # (also a report still queued by _report)
        if self.finished:
            return
        self.finished = True
        if self.connector is not None:
            self.connector.cancel()
            self.connector = None
        self._release()

    cpdef _release(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.message is not None:
            self.message.close()
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    cpdef _report(self):
        self.finished = True
        if self.starting:            # never from inside send_mail
            self.loop.call_soon(self._call_on_done)
        else:
            self._call_on_done()

    def _call_on_done(self):
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done(self.result)

    cpdef _fail(self, code, reason):
        """A failure below SMTP: close at once (the dialogue is in an unknown state)."""
        if self.finished:
            return
        self.result.code = code
        self.result.text = b""
        self.result.error = reason
        self._release()
        self._report()

    cpdef _complete(self, reply):
        """The dialogue ended with `reply` (success or SMTP failure): pool the connection
        (or QUIT) and report."""
        result = self.result
        result.code = reply.code
        result.text = reply.text
        result.stage = reply.stage
        stream, self.stream = self.stream, None
        conn, self.conn = self.conn, None
        self._release()
        if self.input:       # a pipelined RSET's reply, or something unasked: the pool sees it
            stream.unread(self.input)
        if self.abort_data:
            stream.close()   # the host waits for message data: losing the connection aborts it
        elif conn is None or not self.keep or self.quit_sent or self.saw_421:
            _say_goodbye(stream, self.quit_sent)
        elif result.stage == "dot":
            self.pool.put(conn)
        else:                # no transaction completed: RSET, pooled when it is answered 250
            self.pool.reset(conn, self.timeouts.command, self.rset_sent)
        self._report()

    # -- connecting and the greeting -----------------------------------------------------
    def _next_host(self):
        if not self.hosts:
            self.result.stage = "connect"
            self._fail(NO_HOST, self.last_error)
            return
        entry = self.entry = self.hosts.pop(0)
        self.result.stage = "connect"
        self.attempt += 1
        attempt = self.attempt
        connector = netclient.connect(self.loop, [entry], DEFAULT_PORT, self.timeouts.connect, self._connected_cb)
        # The connector may already have failed inside connect() and moved on to the next
        # host (or given up): keep only the one still connecting.
        if attempt == self.attempt and not self.finished and self.stream is None:
            self.connector = connector

    def _connected(self, stream, reason=None):
        self.connector = None
        if stream is None:
            self.last_error = reason or "connect failed"
            self._next_host()
            return
        self.stream = stream
        self.input = b""
        self.result.stage = "greeting"
        reply = self._want_reply(self.timeouts.command)
        if reply is not None:
            self._greeted(reply)

    _connected_cb = _guarded(_connected)

    cpdef _greeted(self, reply):
        stream = self.stream
        if reply.code != 220:
            self.last_error = "%s: greeting %s" % (stream.host, reply.first_line.decode("latin-1"))
            self.stream = None
            _say_goodbye(stream)
            self._next_host()
            return
        self.result.host = stream.host
        self.steps = self._dialogue()
        self._run(None)

    cpdef _reuse(self, conn):
        """Start at MAIL on an idle connection from the pool (to self.hosts[0], which stays
        in the list for the fresh attempt should this connection turn out dead)."""
        self.conn = conn
        self.stream = conn.stream
        self.input = b""
        self.reusing = True
        self.result.host = conn.stream.host
        self.steps = self._transaction(conn.extensions)
        self._run(None)

    def _retry_fresh(self, reason):
        """The reused connection was dead (its MAIL got no reply, or 421). Nothing of the
        message was sent: start again, once, on fresh connections from the first host."""
        stream, self.stream = self.stream, None
        self.conn = None
        self.reusing = False
        self.steps = None
        self.settled = None
        self.abort_data = self.quit_sent = self.rset_sent = self.saw_421 = self.keep = False
        self.result = Result(len(self.recipients))
        self.last_error = "reused connection: %s" % reason
        stream.close()       # a 421 host is closing it anyway; a dead one cannot hear QUIT
        self._next_host()

    def _host_failed_early(self, reason):
        """Silence, garbage or a closed connection instead of a greeting: next host."""
        self.last_error = "%s: %s" % (self.stream.host, reason)
        self.stream.close()
        self.stream = None
        self._next_host()

    # -- the dialogue ----------------------------------------------------------------------
    cpdef _run(self, value):
        """Drive the dialogue until it has to wait for the network. Replies already in the
        stream's buffer (pipelined ones) are taken in this loop, not through recursion."""
        while True:
            try:
                step = self.steps.send(value)
            except StopIteration as stop:
                self._complete(stop.value)
                return
            if step is RETRY_FRESH:
                self._retry_fresh("421 to MAIL")
                return
            if step is SEND_MESSAGE:
                self.result.stage = "message"
                self.chunks = self.message.wire_chunks(b"QUIT\r\n" if self.quit_sent else b"")
                self._pump()
                return
            value = self._want_reply(step)
            if value is None:
                return

    def _dialogue(self):
        """The SMTP conversation after the greeting. Yields a timeout to read a reply (and is
        resumed with it) or SEND_MESSAGE; returns the reply that decides the result."""
        result, stream, command = self.result, self.stream, self.timeouts.command
        result.stage = "EHLO"
        stream.write(b"EHLO %s\r\n" % self.helo)
        reply = yield command
        extensions = _extensions(reply) if reply.code == 250 else None
        if extensions is None:
            result.stage = "HELO"
            stream.write(b"HELO %s\r\n" % self.helo)
            reply = yield command
            if reply.code != 250:
                return reply
            extensions = {}
        self.conn = _Connection(self.entry, self.helo, stream, extensions)
        return (yield from self._transaction(extensions))

    def _transaction(self, extensions):
        """MAIL to the end, on a greeted connection (fresh or from the pool)."""
        result, stream, command = self.result, self.stream, self.timeouts.command
        conn = self.conn
        conn.transactions += 1
        # Only connections to the host tried first are pooled: only those are ever reused.
        keep = self.keep = conn.key[0] == self.first_entry and self.pool.may_keep(conn)
        sending = self.message is not None
        mail_command = self._mail_command(extensions)
        rcpt_commands = [b"RCPT TO:<%s>\r\n" % address for address in self.recipients]
        pipelined = self.pipelining and b"PIPELINING" in extensions
        result.stage = "MAIL"
        if pipelined:
            # a call-ahead that keeps the connection ends its group with the RSET it needs
            self.rset_sent = not sending and keep
            last = b"DATA\r\n" if sending else b"RSET\r\n" if self.rset_sent else b""
            stream.write(b"".join([mail_command, *rcpt_commands, last]))
        else:
            stream.write(mail_command)
        mail = yield command
        if self.reusing:
            if mail.code == 421:
                yield RETRY_FRESH         # never resumed
            self.reusing = False          # it answered: from here on, as a fresh connection
        result.mail_accepted = mail.code == 250
        if not result.mail_accepted:
            if not pipelined:
                return mail
            self.settled = mail           # the rest are 503s; a host that now hangs up is no news
        reply = mail
        for index, rcpt_command in enumerate(rcpt_commands):
            result.stage = "RCPT"
            if not pipelined:
                stream.write(rcpt_command)
            reply = yield command
            if result.mail_accepted:
                result.recipient_replies[index] = reply.first_line
                if reply.code in (250, 251):
                    result.accepted += 1
        last_rcpt = reply
        data = None
        if pipelined and sending:
            result.stage = "DATA"
            data = yield command
        if not result.mail_accepted:
            return self._no_data(data, mail)
        if not sending or result.accepted == 0:
            return self._no_data(data, last_rcpt)
        if data is None:
            result.stage = "DATA"
            stream.write(b"DATA\r\n")
            data = yield command
        if data.code != 354:
            return data
        # RFC 2920 lets QUIT end the group that the message content starts: one write and
        # one round trip fewer per message, when the connection will not be pooled.
        self.quit_sent = pipelined and not keep
        yield SEND_MESSAGE
        result.stage = "dot"
        return (yield self.timeouts.dot)

    def _no_data(self, data_reply, final):
        """The message will not be sent; if the host nevertheless said 354 to a pipelined
        DATA (it should not, RFC 2920), drop the connection rather than send an empty one."""
        self.abort_data = data_reply is not None and data_reply.code == 354
        return final

    cpdef _mail_command(self, extensions):
        params = b""
        if self.message is not None:
            if b"SIZE" in extensions:
                params += b" SIZE=%d" % self.message.size
            if b"8BITMIME" in extensions:
                params += b" BODY=8BITMIME"
        return b"MAIL FROM:<%s>%s\r\n" % (self.sender, params)

    # -- replies -------------------------------------------------------------------------
    # Replies are cut straight from the bytes the stream delivers (pipelined replies come in
    # one piece): no call per line, no read request per reply that is already here.
    cpdef _want_reply(self, timeout):
        """-> the next Reply when it is in self.input already; else None, and the dialogue
        goes on when it has arrived (or the failure has been dealt with). The whole reply,
        however many lines, has one deadline."""
        reply = self._take_reply() if self.input else _NOTHING   # (nothing here: the usual case)
        if reply is _NOTHING:
            self.reply_deadline = self.loop.time() + timeout
            self.stream.read_some(self._input_cb, timeout)
            return None
        return reply

    def _input_arrived(self, data):
        if not data:
            self._input_failed(data)
            return
        self.input += data
        reply = self._take_reply()
        if reply is _NOTHING:             # part of a reply: wait for the rest
            remaining = self.reply_deadline - self.loop.time()
            if remaining <= 0:
                self._read_failed(ERROR_TIMEOUT, "timed out waiting for a reply")
            else:
                self.stream.read_some(self._input_cb, remaining)
        elif reply is None:
            return                        # (not a reply: the failure has been dealt with)
        elif self.steps is None:          # no dialogue yet: it is the greeting
            self._greeted(reply)
        else:
            self._run(reply)

    # (made once per method, not a bound method kept on self: a cycle would leave every
    # delivery to the garbage collector)
    _input_cb = _guarded(_input_arrived)

    cpdef _take_reply(self):
        """Cut the next complete reply from self.input (not empty: the callers look first):
        -> the Reply, _NOTHING when more input is needed, None when the input is not an SMTP
        reply (failure dealt with)."""
        data = self.input
        code = REPLY_CODES.get(data[:3])
        end = data.find(b"\n") + 1
        # the usual one-line "250 text" reply is told without the regex
        if code is None or not 4 < end <= LINE_LIMIT or data[3] not in _TEXT_STARTS:
            match = _REPLY.match(data)   # (a match starts with a valid code: `code` is set)
            if match is None:
                return self._partial_reply(data)
            end = match.end()
        self.input = data[end:]
        if code == 421:
            self.saw_421 = True
        return Reply(code, data[:end], self.result.stage)

    def _partial_reply(self, data):
        """No complete reply starts `data`: -> _NOTHING when one may still follow, else
        None (the failure has been dealt with)."""
        start = 0
        for _ in range(MAX_REPLY_LINES):
            end = data.find(b"\n", start) + 1
            if (end or len(data) + 1) - start > LINE_LIMIT:   # (counting an LF to come)
                self._read_failed(ERROR, "reply line longer than %d bytes" % LINE_LIMIT)
                return None
            if not end:
                return _NOTHING
            if not _REPLY_LINE.fullmatch(data, start, end):
                self._read_failed(ERROR, "not an SMTP reply: %r" % data[start:min(end, start + 80)])
                return None
            start = end       # a "250-" line: _REPLY would have taken a complete reply
        self._read_failed(ERROR, "reply longer than %d lines" % MAX_REPLY_LINES)
        return None

    def _input_failed(self, data):
        """The stream gave None (error, timeout) or b"" (EOF) while a reply was awaited."""
        stream = self.stream
        if data is None and stream.error == "timed out":
            self._read_failed(ERROR_TIMEOUT, "timed out waiting for a reply")
        elif data is None:
            self._read_failed(ERROR, stream.error)
        elif self.input:
            self._read_failed(ERROR_EOF, "connection closed in the middle of a reply")
        else:
            self._read_failed(ERROR_EOF, "connection closed")

    def _read_failed(self, code, reason):
        if self.reusing:                  # a pooled connection that died while idle
            self._retry_fresh(reason)
        elif self.result.host is None:
            self._host_failed_early(reason)
        elif self.settled is not None:
            self.abort_data = True        # close without QUIT: the host is gone anyway
            self._complete(self.settled)
        else:
            self._fail(code, reason)

    # -- the message -----------------------------------------------------------------------
    def _pump(self):
        """Queue message chunks while little is queued; then wait until the socket drains."""
        stream = self.stream
        while stream.pending_output < HIGH_WATER:
            if stream.broken:
                self._fail(ERROR, "sending the message: %s" % stream.error)
                return
            try:
                chunk = next(self.chunks, None)
            except (OSError, ValueError) as exc:
                self._fail(ERROR_IO, "reading the message: %s" % (getattr(exc, "strerror", None) or exc))
                return
            if chunk is None:
                self._run(None)           # all queued: read the reply to the dot
                return
            stream.write(chunk)
        # A host that stops reading must not hold us: no progress in a command timeout fails.
        self._arm_stall_timer()
        stream.write(b"", self._drained_cb)

    _pump_cb = _guarded(_pump)

    def _arm_stall_timer(self):
        self.stall_mark = self.stream.pending_output
        self.timer = self.loop.call_later(self.timeouts.command, self._stalled_cb)

    def _drained(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.loop.call_soon(self._pump_cb)  # never from inside write(): no deep recursion

    _drained_cb = _guarded(_drained)

    def _write_stalled(self):
        self.timer = None
        if self.stream.pending_output < self.stall_mark:
            self._arm_stall_timer()       # slow, but it reads: give it another period
            return
        self._fail(ERROR_TIMEOUT, "the host stopped reading the message")

    _stalled_cb = _guarded(_write_stalled)


def _say_goodbye(stream, quit_sent=False):
    """QUIT, and close once the host hangs up (or soon): closing with its reply unread would
    reset the connection. The result does not wait for this."""
    if stream.closed:
        return
    if not quit_sent:
        stream.write(b"QUIT\r\n")
    stream.read_until_eof(lambda _data: stream.close(), GOODBYE_TIMEOUT, 65536)


# -- the connection pool ---------------------------------------------------------------------

def close_idle(loop):
    """Worker drain/shutdown: QUIT every idle smart-host connection of `loop`, and pool no
    more on it (a delivery still running QUITs its connection when it ends)."""
    _pool(loop).close()


def idle_connections(loop):
    """{host entry: number of idle pooled connections} of `loop` (for tests and logs)."""
    pool = getattr(loop, "_smtpclient_pool", None)
    if pool is None:
        return {}
    counts = {}
    for (entry, _helo), idle in pool.idle.items():
        counts[entry] = counts.get(entry, 0) + len(idle)
    return counts


def _pool(loop):
    pool = getattr(loop, "_smtpclient_pool", None)
    if pool is None:
        pool = loop._smtpclient_pool = _Pool()
    return pool


cdef class _Connection:
    """A greeted smart-host connection: what a later transaction needs to start at MAIL."""
    cdef public object key, stream, extensions
    cdef public Py_ssize_t transactions
    cdef public bint pooled

    def __init__(self, entry, helo, stream, extensions):
        self.key = (entry, helo)
        self.stream = stream
        self.extensions = extensions
        self.transactions = 0        # MAIL commands sent on it
        self.pooled = False          # idle in the pool (its stream watched for EOF)


@cython.final
cdef class _Pool:
    """Idle connections of one loop by (host entry, HELO name), most recently used last."""
    cdef public dict idle
    cdef public bint closed

    def __init__(self):
        self.idle = {}
        self.closed = False

    cpdef may_keep(self, conn):
        return not self.closed and POOL_MAX_IDLE > 0 and conn.transactions < POOL_MAX_MESSAGES

    cpdef take(self, entry, helo):
        """-> the most recently pooled connection to `entry`, or None."""
        key = (entry, helo)
        idle = self.idle.get(key)
        if not idle:
            return None
        conn = idle.pop()
        if not idle:
            del self.idle[key]
        conn.pooled = False          # its idle read is replaced by the next read_line
        return conn

    def put(self, conn):
        """A connection whose transaction ended cleanly: keep it idle, or QUIT it."""
        stream = conn.stream
        if stream.closed or stream.broken or stream.pending_output:
            stream.close()
            return
        idle = self.idle.get(conn.key)
        if not self.may_keep(conn) or (idle is not None and len(idle) >= POOL_MAX_IDLE):
            _say_goodbye(stream)
            return
        if idle is None:
            idle = self.idle[conn.key] = []
        idle.append(conn)
        conn.pooled = True
        # Anything the host says now (EOF, a 421 before it closes) or the idle timeout ends
        # it; so does input already buffered (a reply nobody asked for): at once.
        stream.read_some(lambda data: self._idle_event(conn, data), POOL_IDLE_TIMEOUT)

    def _idle_event(self, conn, data):
        if not conn.pooled:
            return                   # taken meanwhile: this was the old idle read failing
        self._remove(conn)
        stream = conn.stream
        if data is None and not stream.broken:
            _say_goodbye(stream)     # idle too long: QUIT
        else:
            stream.close()           # closed, reset, or something unasked: the host is leaving

    def _remove(self, conn):
        conn.pooled = False
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            if not idle:
                del self.idle[conn.key]

    def reset(self, conn, timeout, rset_sent=False):
        """A transaction that ended before the message: RSET (unless it went out pipelined)
        and pool the connection once that is answered 250; anything else closes it."""
        stream = conn.stream
        if not self.may_keep(conn):
            _say_goodbye(stream)     # (after a pipelined RSET too: its reply is just read)
            return
        if not rset_sent:
            stream.write(b"RSET\r\n")
        lines = []

        def on_line(line):
            if stream.closed:
                return
            if (line is None or not line.endswith(b"\n") or not line[:3].isdigit()
                    or line[3:4] not in (b" ", b"-", b"\r", b"\n") or len(lines) >= MAX_REPLY_LINES):
                stream.close()
                return
            lines.append(line)
            if line[3:4] == b"-":
                stream.read_line(on_line, timeout, LINE_LIMIT)
            elif lines[0][:3] == b"250":
                self.put(conn)
            else:
                _say_goodbye(stream)

        stream.read_line(on_line, timeout, LINE_LIMIT)

    def close(self):
        self.closed = True
        idle, self.idle = self.idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.pooled = False
                _say_goodbye(conn.stream)


cdef class _Message:
    """The message to send: bytes, or a spool file opened at once (so a vanished or
    unreadable file fails before any host is bothered)."""
    cdef public object data, handle
    cdef public Py_ssize_t size

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            if not source:
                raise ValueError("empty message")   # as the original: nothing to send
            self.data = source      # (not copied: a spool's buffer is never changed in place)
            self.handle = None
            self.size = len(self.data)
        else:
            self.data = None
            self.handle = open(source, "rb")
            self.size = os.fstat(self.handle.fileno()).st_size

    def blocks(self):
        if self.handle is None:
            data = self.data
            for start in range(0, len(data), BLOCK):
                yield data[start:start + BLOCK]
            return
        read = self.handle.read
        while True:
            block = read(BLOCK)
            if not block:
                return
            yield block

    def wire_chunks(self, trailer=b""):
        """The message as DATA content ending in CRLF "." CRLF: an iterator of chunks; the
        last carries the terminator (and `trailer`, a pipelined command) so a small message
        goes out in one write."""
        if self.handle is None and self.size <= ONE_WRITE:   # in memory: one write, no generators
            encoder = WireEncoder()
            return iter((encoder.encode(self.data) + encoder.finish() + trailer,))
        return self._wire_blocks(trailer)

    def _wire_blocks(self, trailer):
        encoder = WireEncoder()
        pending = b""
        for block in self.blocks():
            if pending:
                yield pending
            pending = encoder.encode(block)
        self.close()
        yield pending + encoder.finish() + trailer

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


cdef class WireEncoder:
    """Real message -> SMTP DATA content, fed block by block: every line end CRLF (bare CR
    or LF become CRLF), a dot doubled at the start of every line, and a terminator that adds
    the missing final CRLF."""
    cdef public bint at_line_start, held_cr

    def __init__(self):
        self.at_line_start = True
        self.held_cr = False      # the last block ended in CR: its LF may open the next one

    def encode(self, block):
        if self.held_cr:
            block = b"\r" + block
        self.held_cr = block.endswith(b"\r")
        if self.held_cr:
            block = block[:-1]
        data, self.at_line_start = wire_encode(block, self.at_line_start)
        return data

    def finish(self):
        if self.held_cr:                  # a final lone CR ends the last line
            return b"\r\n.\r\n"
        return b".\r\n" if self.at_line_start else b"\r\n.\r\n"


def _extensions(reply):
    """EHLO reply -> {KEYWORD: parameters} from its lines after the first."""
    extensions = {}
    for line in reply.text.split(b"\n")[1:]:
        words = line[4:].split()
        if words:
            extensions[words[0].upper()] = words[1:]
    return extensions


def _as_bytes(value):
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise TypeError("address must be a string, not %s" % type(value).__name__)


cdef bint _has_line_break_or_nul(bytes address):
    # (a typed scan: a regex search cost some 3,000 instructions per address, and
    # `b"\r" in address` first fails as an integer test in Python 3.11, building a TypeError)
    cdef const unsigned char *text = address
    cdef Py_ssize_t i
    for i in range(len(address)):
        if text[i] == 13 or text[i] == 10 or text[i] == 0:
            return True
    return False


def _address(value):
    """An envelope address for MAIL/RCPT: angle brackets optional; no line breaks or NULs
    (they would smuggle commands into the dialogue)."""
    cdef bytes address = _as_bytes(value).strip()
    if address.startswith(b"<") and address.endswith(b">"):
        address = address[1:-1]
    if _has_line_break_or_nul(address):
        raise ValueError("address with a line break or NUL: %r" % address[:80])
    return address


_fqdn = None
_NOT_IN_HELO = re.compile(rb"[ \t\r\n\0]")


@functools.lru_cache(maxsize=64)   # the worker's one name, validated for every message
def _helo(name):
    global _fqdn
    if name is None:
        if _fqdn is None:
            _fqdn = socket.getfqdn() or "localhost"
        name = _fqdn
    helo = _as_bytes(name).strip()
    if not helo or _NOT_IN_HELO.search(helo):
        raise ValueError("bad HELO name %r" % helo[:80])
    return helo


def _first_line(reply):
    end = reply.find(b"\n")
    line = reply if end < 0 else reply[:end]
    return line[:-1] if line.endswith(b"\r") else line
