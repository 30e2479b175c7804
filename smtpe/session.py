"""One client connection: the SMTP dialogue, hook calls, spooling and forwarding.

The dialogue is a generator (`_run`) driven by `_step`: it yields READ when it needs more
input, or a Wait (a hook call, a PTR lookup, a smart-host delivery) when it must wait for
the loop. So the SMTP logic reads straight down, and a waiting hook suspends only this
client. The session talks to its client through a transport (socket or test double) and to
the rest of the worker through `worker` (engine, options, log, resolver, rate limits).
"""
import base64
import errno
import ipaddress
import os

from . import protocol as p
from .ids import TransactionIds
from .spool import Spool
from ._speedups.loop import Deadline
from .waits import READ, Wait
from .delivery import end_of_data
from ._speedups.linereader import TOO_LONG, LineReader

CRLF = b"\r\n"
ETIMEDOUT = errno.ETIMEDOUT


def _s(value):
    """Client-supplied bytes as text for reply formatting (lossless)."""
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


class ClientGone(Exception):
    """The session must end: close code for hook.close, optional errno for hook.error, and
    an optional last reply (421 timeout, 421 shutting down)."""

    def __init__(self, code, error_number=0, text="", reply=None):
        super().__init__(text)
        self.code = code
        self.error_number = error_number
        self.text = text
        self.reply = reply


def _abandon_hook(session):
    run = session.ctx.run
    if run is not None:
        run.abandon()


class Session:
    # Slots, not a __dict__: a worker holds thousands of mostly idle sessions (about 1.2 KB
    # saved per connection).
    __slots__ = ("_early", "_idle", "_idle_timeout", "_pending",
                 "_stepping", "_task", "_wants_input", "address", "authenticated", "close_code",
                 "ctx", "draining", "drop", "engine", "eof", "finished", "helo_arg", "helo_state",
                 "hook_failed", "host", "id_sess", "ident", "is_pipelining", "local_address",
                 "log", "options", "port", "reader", "replies", "spool", "state", "trans_ids",
                 "transaction", "transport", "worker", "__weakref__")

    def __init__(self, worker, transport, peer, local):
        self.worker = worker
        self.engine = worker.engine
        self.options = worker.options
        self.log = worker.log
        self.replies = worker.replies
        self.transport = transport
        self.address = _peer_text(peer[0])
        self.port = peer[1] if len(peer) > 1 else 0
        self.local_address = _peer_text(local[0]) if local else None
        self.id_sess = worker.session_ids.next_session()
        self.ident = self.id_sess
        self.trans_ids = TransactionIds(self.id_sess)
        self.ctx = self.engine.new_context(self)
        self.reader = LineReader()
        self.host = "[%s]" % self.address
        self.helo_arg = b""
        self.state = p.NONE
        self.helo_state = p.NONE
        self.transaction = None
        self.spool = None
        self.authenticated = False
        self.is_pipelining = False
        self.drop = False          # a hook asked to close after the next reply
        self.hook_failed = False   # the last hook raised a Lua error
        self.close_code = None     # set when the dialogue decided to end
        self.draining = False
        self.eof = False
        self._task = None
        self._stepping = False
        self._early = None
        self._pending = None       # the Wait in progress
        self._wants_input = False
        self._idle = Deadline(worker.loop, self._idle_expired)
        self._idle_timeout = self.options.float("smtp-command-timeout")
        self.finished = False

    # ================================================================ driver
    def start(self):
        self.transport.start(self)
        self._task = self._run()
        self._step(None)

    def _step(self, value, error=None):
        if self._stepping:
            self._early = (value, error)
            return
        self._stepping = True
        try:
            while True:
                try:
                    request = self._task.throw(error) if error is not None else self._task.send(value)
                except StopIteration:
                    self._task = None
                    return
                value = error = None
                if request is READ:
                    # The dialogue has taken all it can from the buffer: what is left there
                    # (part of a line, a dot that may end the message) needs more input. No
                    # input arrives during a step, so none can be waiting unseen here.
                    if self.eof:
                        error = ClientGone(4, 0, "connection closed by client")
                        continue
                    self._wait_for_input()
                    return
                self._pending = request
                self._early = None
                request.start(self._resumed)
                if self._early is not None:
                    self._pending = None
                    (value, error), self._early = self._early, None
                    continue
                self.transport.flush()
                return
        finally:
            self._stepping = False

    def _resumed(self, *values):
        if self._pending is None:
            return
        self._pending = None
        self._step(values[0] if len(values) == 1 else values)

    def _wait_for_input(self):
        self._wants_input = True
        self.transport.flush()
        self.transport.resume_reading()
        self._idle.set(self._idle_timeout)

    def _idle_expired(self):
        if not self._wants_input or self._task is None:
            return
        self._wants_input = False
        self._step(None, ClientGone(0, ETIMEDOUT, os.strerror(ETIMEDOUT), self.replies.timeout()))

    # ================================================================ transport events
    def data_received(self, data):
        self.reader.feed(data)
        if type(self._pending) is _InputPause:  # early talker during the greeting pause
            self._pending.cancel()
            self._resumed(None)
        elif self._wants_input:
            self._wants_input = False
            self._step(None)
        elif self.reader.pending() > 1 << 20:
            self.transport.pause_reading()  # busy in a hook: stop buffering

    def eof_received(self):
        self.eof = True
        if self._wants_input:
            self._wants_input = False
            self._step(None)

    def connection_failed(self, error_number, text, code):
        """Read or write error: the client is gone; abandon whatever we wait for."""
        self.eof = True
        if self._task is None or self.close_code is not None:
            return
        gone = ClientGone(code, error_number, text)
        if self._wants_input:
            self._wants_input = False
            self._step(None, gone)
        elif self._pending is not None and not self._stepping:
            pending, self._pending = self._pending, None
            pending.cancel()
            self._step(None, gone)

    def in_transaction(self):
        """Between MAIL and the end-of-data reply (or RSET): what a drain lets finish."""
        return self.state in (p.MAIL, p.RCPT, p.DATA)

    def drain(self):
        """Server shutdown: finish the current transaction, then 421 and close."""
        self.draining = True
        if self._wants_input and not self.in_transaction():
            self._wants_input = False
            self._step(None, ClientGone(0, 0, "shutting down", self.replies.shutting_down()))

    def abort(self):
        """Drain deadline passed: end the session now, whatever it is doing."""
        if self._task is None:
            return
        gone = ClientGone(0, 0, "shutting down", self.replies.shutting_down())
        if self._wants_input:
            self._wants_input = False
            self._step(None, gone)
        elif self._pending is not None and not self._stepping:
            pending, self._pending = self._pending, None
            pending.cancel()
            self._step(None, gone)

    def write_raw(self, data, timeout, on_done):
        """client.write / service.client.write: queue bytes, on_done(ok) once sent."""
        transport = self.transport
        transport.write(data)
        state = {"timer": None}

        def done(ok):
            if state["timer"] is not None:
                state["timer"].cancel()
                state["timer"] = None
                on_done(ok)

        def expired():
            state["timer"] = None
            transport.cancel_drained(done)
            on_done(False)

        state["timer"] = self.worker.loop.call_later(timeout, expired)
        transport.when_drained(done)

    # ================================================================ the dialogue
    def _run(self):
        code = 0
        try:
            yield from self._accept_phase()
            while self.close_code is None:
                if self.draining and not self.in_transaction():
                    raise ClientGone(0, 0, "shutting down", self.replies.shutting_down())
                line = self.reader.next_line()
                if line is None:
                    yield READ
                    continue
                yield from self._command(line)
            code = self.close_code
        except ClientGone as gone:
            code = gone.code
            if gone.reply and not self.transport.closed:
                yield from self._send(gone.reply, hooks=False)
            if gone.error_number:
                yield from self._hook_quietly("error", gone.error_number, p.reply_bytes(gone.text))
        except Exception as exc:  # a bug of ours must cost this client only
            self.log.error("session failed: %s: %s" % (type(exc).__name__, exc), self.ident)
            code = 4
            if not self.transport.closed:
                self.transport.write(p.reply_bytes(self.replies.internal_error()) + CRLF)
            yield from self._hook_quietly("error", errno.EINVAL, b"internal error")
        yield from self._finish(code)

    def _finish(self, code):
        if self.spool is not None:
            self.spool.remove()
            self.spool = None
        yield from self._hook_quietly("close", code)
        self.finished = True
        self._idle.cancel()
        self.ctx.close()
        self.transport.close()
        self.worker.session_closed(self)
        self.log.info("close %s [%s] code=%d" % (self.host, self.address, code), self.id_sess)

    # ---------------------------------------------------------------- hooks and replies
    def _hook(self, name, *args):
        """Run hook.<name>; -> (code, reply bytes or None). Lua errors are logged and give
        the fail-safe 451 (the policy could not judge, so nothing is accepted). A hook the
        script lacks gives Engine.call_hook's NOT_DEFINED: no values, no error."""
        outcome = self.engine.call_hook(self.ctx, name, args)
        if isinstance(outcome, Wait):  # most hooks finish at once: no suspension then
            outcome = yield outcome
        self.hook_failed = outcome.error is not None
        if self.hook_failed:
            self.log.error("hook.%s: %s" % (name, outcome.error), self.ident)
            return 451, p.reply_bytes(self.replies.hook_failed()) + CRLF
        values = outcome.values
        if not values:
            return 0, None
        last = values[-1]
        if isinstance(last, bool) or not isinstance(last, (bytes, int, float)):
            return 0, None
        if len(values) >= 2:
            self.drop = values[-2] is not None and values[-2] is not False
        text = last if isinstance(last, bytes) else p.reply_bytes(_number_text(last))
        code = p.reply_code(text)
        if 200 <= code <= 599:
            return code, text if text.endswith(CRLF) else text + CRLF
        return code, None

    def _hook_quietly(self, name, *args):
        """A hook whose reply has no meaning (reset, close, error): errors are only logged.
        -> what to `yield from`: nothing at all when the hook is not defined (no generator
        to make for the hooks most scripts leave out)."""
        if name.encode() not in self.engine.defined:
            return ()
        return self._run_quietly(name, args)

    def _run_quietly(self, name, args):
        outcome = self.engine.call_hook(self.ctx, name, args)
        if isinstance(outcome, Wait):
            outcome = yield outcome
        if outcome.error is not None:
            self.log.error("hook.%s: %s" % (name, outcome.error), self.ident)

    def _send(self, text, hooks=True):
        """Send a reply (through hook.reply); -> the code actually sent. Closes after it when
        a hook set the drop flag."""
        data = p.reply_bytes(text)
        if not data.endswith(CRLF):
            data += CRLF
        if hooks:
            if b"reply" in self.engine.defined:  # (most scripts have none: spare the generator)
                code, replaced = yield from self._hook("reply", data)
                if replaced is not None:
                    data = replaced
            if (self.is_pipelining and self.options.flag("rfc2920-pipelining-reject")
                    and self.state != p.DATA
                    and not (self.options.flag("rfc2920-pipelining-enable") and self.helo_state == p.EHLO)):
                data = p.reply_bytes(self.replies.pipelining_rejected()) + CRLF
        self.transport.write(data)
        if self.drop and self.close_code is None:
            self.close_code = 1
        return p.reply_code(data)

    # ---------------------------------------------------------------- accept phase
    def _accept_phase(self, rerun=False):
        limit = self.options.int("rate-client")
        if limit > 0:
            count = self.worker.rate_client(self.address)
            if count > limit:
                yield from self._send(self.replies.rate_client(self.host if rerun else "", self.address, count, limit))
                raise ClientGone(2, 0, "rate limited")
        if not rerun:
            resolver = getattr(self.worker.loop, "resolver", None)
            if resolver is not None:
                name = yield _PtrLookup(resolver, self.address)
                if name:
                    self.host = name
            pause = self.options.int("smtp-greeting-pause")
            if pause > 0 and not self.reader.pending():
                yield _InputPause(self, pause / 1000.0)
            if self.reader.pending():
                self.is_pipelining = True  # talked before the banner
        client = self.ctx.client
        client[b"address"] = p.reply_bytes(self.address)
        client[b"port"] = self.port
        client[b"host"] = p.reply_bytes(self.host)
        if self.local_address:
            client[b"local_address"] = p.reply_bytes(self.local_address)
        client[b"id_sess"] = p.reply_bytes(self.id_sess)
        client[b"is_pipelining"] = self.is_pipelining
        client[b"input"] = b"XCLIENT" if rerun else b""
        self.state = p.ACCEPT
        self.log.info("connect %s [%s]" % (self.host, self.address), self.id_sess)
        code, text = yield from self._hook("accept", p.reply_bytes(self.address), p.reply_bytes(self.host))
        if self.hook_failed:  # no policy, no session: a 4xx greeting and goodbye
            yield from self._send(self.replies.internal_error())
            raise ClientGone(4, 0, "hook.accept failed")
        yield from self._send(text or self.replies.banner(self.id_sess))

    # ---------------------------------------------------------------- commands
    def _command(self, line):
        if line is TOO_LONG:
            yield from self._send(self.replies.line_too_long(), hooks=True)
            return
        client = self.ctx.client
        if (not self.is_pipelining and self.reader.pending()
                and not (self.helo_state == p.EHLO and self.options.flag("rfc2920-pipelining-enable"))):
            self.is_pipelining = True   # (never false again: client's field is written once)
            client[b"is_pipelining"] = True
        client[b"input"] = line
        verb, arg = p.split_command(line)
        if verb is None and self.worker.test_mode:
            yield from self._test_lua(line)
            return
        if verb is None or (verb == "XCLIENT" and not self.options.flag("smtp-xclient")):
            yield from self._unknown(line)
            return
        if not p.is_allowed(verb, self.state):
            yield from self._out_of_sequence(line)
            return
        try:
            yield from getattr(self, _HANDLERS[verb])(line, arg)
        except _Cancelled:
            pass

    def _test_lua(self, source):
        """+test mode: a line that is no SMTP command is Lua; print what it returns."""
        outcome = yield _SourceRun(self, source)
        if outcome.error is not None:
            self.transport.write(b"error: " + p.reply_bytes(outcome.error) + CRLF)
        else:
            self.transport.write(b"\t".join(p.reply_bytes(_lua_text(v)) for v in outcome.values) + CRLF)

    def _unknown(self, line):
        code, text = yield from self._hook("unknown", line)
        yield from self._send(text or self.replies.unknown(_s(line)))

    def _out_of_sequence(self, line, text=None):
        code, hook_text = yield from self._hook("out_seq", line)
        yield from self._send(hook_text or text or self.replies.out_of_sequence(_s(line)))

    def _pipelined_after(self, verb, code=550):
        """RFC 2920: EHLO, NOOP, QUIT and DATA must end a pipelined group. Input after them
        is refused and discarded, as the original did."""
        if not self.reader.pending():
            return False
        self.reader.discard()
        yield from self._send("%d 5.5.0 %s pipeline data after %s command" % (code, self.replies.e, verb))
        return True

    def _cmd_helo(self, line, arg):
        yield from self._greeting(line, arg, extended=False)

    def _cmd_ehlo(self, line, arg):
        if (yield from self._pipelined_after("EHLO")):
            return
        yield from self._greeting(line, arg, extended=True)

    def _greeting(self, line, arg, extended):
        arg = p.helo_argument(arg)
        if not arg:
            yield from self._send(self.replies.missing_argument())
            return
        name = "ehlo" if extended else "helo"
        self.state = p.EHLO if extended else p.HELO
        code, text = yield from self._hook(name, arg)
        if extended:
            default = self.replies.ehlo(
                _s(arg), self.address, self.host,
                xclient=self.options.flag("smtp-xclient"),
                pipelining=self.options.flag("rfc2920-pipelining-enable"),
                auth=self.engine.has_hook("auth") and not self.authenticated,
                max_size=self.options.int("smtp-max-size"))
        else:
            default = self.replies.helo(_s(arg), self.address, self.host)
        sent = yield from self._send(text or default)
        if p.is_positive(sent):
            self.helo_arg = arg
            self.helo_state = self.state
            yield from self._reset()
        else:
            self.state = p.ACCEPT

    def _cmd_auth(self, line, arg):
        if self.state != p.EHLO or not self.engine.has_hook("auth"):
            yield from self._unknown(line)
            return
        if self.authenticated:
            yield from self._send(self.replies.auth_again())
            return
        mechanism, _, initial = arg.partition(b" ")
        mechanism = mechanism.upper()
        if mechanism not in (b"PLAIN", b"LOGIN"):
            yield from self._send(self.replies.auth_mechanism())
            return
        if mechanism == b"PLAIN":
            response = initial.strip() or (yield from self._challenge(b""))
            fields = _base64(response)
            parts = fields.split(b"\0") if fields is not None else []
            if len(parts) != 3:
                yield from self._send(self.replies.auth_syntax())
                return
            authzid, user, password = parts
        else:
            user = _base64(initial.strip()) if initial.strip() else _base64((yield from self._challenge(b"VXNlcm5hbWU6")))
            password = _base64((yield from self._challenge(b"UGFzc3dvcmQ6"))) if user is not None else None
            authzid = b""
            if user is None or password is None:
                yield from self._send(self.replies.auth_syntax())
                return
        code, text = yield from self._hook("auth", line, user, password, authzid)
        if 200 <= code <= 299:
            self.authenticated = True
            yield from self._send(text or self.replies.auth_ok())
        else:
            yield from self._send(text or self.replies.auth_failed())

    def _challenge(self, prompt):
        """Send a 334 challenge and read the client's answer line ('*' cancels)."""
        self.transport.write(b"334 " + prompt + CRLF)
        while True:
            answer = self.reader.next_line()
            if answer is not None:
                break
            yield READ
        if answer.strip() == b"*":
            yield from self._send(self.replies.auth_cancelled())
            raise _Cancelled()
        return answer.strip()

    def _path_command(self, arg, for_mail):
        """MAIL/RCPT argument -> (address, domain, parameters), or None once the error reply
        (syntax, missing argument, bad path) is sent."""
        parsed = p.path_argument(arg)
        if parsed is None:
            yield from self._send(self.replies.syntax_error())
            return None
        token, params = parsed
        if not token:
            yield from self._send(self.replies.missing_argument())
            return None
        try:
            address, domain = p.parse_path(token, for_mail, self.worker.path_rules)
        except p.PathError as error:
            yield from self._send(self.replies.path_error(error.reason))
            return None
        return address, domain, params

    def _cmd_mail(self, line, arg):
        parsed = yield from self._path_command(arg, True)
        if parsed is None:
            return
        address, domain, params = parsed
        max_size = self.options.int("smtp-max-size")
        size = p.mail_parameters(params).get("SIZE")
        if max_size > 0 and size is not None and size.isdigit() and int(size) > max_size:
            yield from self._send(self.replies.size_exceeded(max_size))
            return
        self.transaction = p.Transaction(self.trans_ids.next(), sender=address)
        self.ident = self.transaction.id
        self.ctx.new_transaction_tables()
        self.ctx.headers = []
        self.ctx.headers_dirty = False
        self.ctx.client[b"id_trans"] = p.reply_bytes(self.transaction.id)
        self.state = p.MAIL
        code, text = yield from self._hook("mail", address, domain)
        sent = yield from self._send(text or self.replies.mail_ok(_s(address)))
        if p.is_positive(sent):
            self.log.info("sender <%s>" % _s(address), self.ident)
        else:
            self.state = self.helo_state

    def _cmd_rcpt(self, line, arg):
        parsed = yield from self._path_command(arg, False)
        if parsed is None:
            return
        address, domain, _ = parsed
        if not address:
            yield from self._send(self.replies.null_recipient())
            return
        at = address.rfind(b"@")
        stored = address if at < 0 else address[:at + 1] + address[at + 1:].lower()
        self.state = p.RCPT
        code, text = yield from self._hook("rcpt", address, domain)
        sent = yield from self._send(text or self.replies.rcpt_ok(_s(stored)))
        if p.is_positive(sent):
            self.transaction.recipients.append(stored)

    def _cmd_data(self, line, arg):
        transaction = self.transaction
        if not transaction.recipients:
            if not (yield from self._pipelined_after("DATA", 554)):
                yield from self._send(self.replies.no_recipients())
            return
        spool_dir = self.options.get("spool-dir")
        if spool_dir:
            try:
                self.spool = Spool(spool_dir, transaction.id, self.worker.spool_memory)
            except OSError as exc:
                self.log.error("spool %s: %s" % (spool_dir, exc.strerror), self.ident)
                yield from self._send(self.replies.try_again(transaction.id))
                return
            transaction.spool_path = self.spool.path
        self.ctx.client[b"msg_file"] = self.spool.path_bytes if self.spool is not None else b""
        self.state = p.DATA
        code, text = yield from self._hook("data")
        sent = yield from self._send(text or self.replies.data())
        if sent < 200 or sent == 354:
            yield from end_of_data(self)
        else:
            self.state = p.RCPT
            if self.spool is not None:
                self.spool.remove()
                self.spool = None

    def _cmd_rset(self, line, arg):
        code, text = yield from self._hook("rset")
        yield from self._send(text or self.replies.ok())
        yield from self._reset()

    def _cmd_noop(self, line, arg):
        if (yield from self._pipelined_after("NOOP")):
            return
        code, text = yield from self._hook("noop")
        yield from self._send(text or self.replies.ok())

    def _cmd_help(self, line, arg):
        code, text = yield from self._hook("help")
        yield from self._send(text or self.replies.help())

    def _cmd_quit(self, line, arg):
        if (yield from self._pipelined_after("QUIT")):
            return
        code, text = yield from self._hook("quit")
        yield from self._send(text or self.replies.quit(self.id_sess))
        if self.close_code is None:
            self.close_code = 1 if self.drop else 0

    def _cmd_xclient(self, line, arg):
        code, text = yield from self._hook("xclient")
        trusted = _is_loopback(self.address)
        if not (200 <= code <= 299 or (trusted and p.is_positive(code))):
            yield from self._send(text or self.replies.xclient_denied())
            return
        changes = {}
        for attribute in arg.split():
            name, sep, value = attribute.partition(b"=")
            name = name.upper()
            if not sep or name not in (b"NAME", b"ADDR", b"PORT", b"HELO", b"PROTO", b"LOGIN"):
                yield from self._send(self.replies.xclient_argument(_s(attribute)))
                return
            if name == b"ADDR":
                try:
                    value = _ip_text(value.decode("ascii").removeprefix("IPV6:").removeprefix("ipv6:"))
                except (UnicodeDecodeError, ValueError):
                    yield from self._send(self.replies.xclient_argument(_s(attribute)))
                    return
            if name == b"PORT" and not value.isdigit():
                yield from self._send(self.replies.xclient_argument(_s(attribute)))
                return
            changes[name] = value
        yield from self._apply_xclient(changes)

    def _apply_xclient(self, changes):
        name = changes.get(b"NAME")
        if b"ADDR" in changes:
            self.address = changes[b"ADDR"]
            if name is None:
                self.host = "[%s]" % self.address
                resolver = getattr(self.worker.loop, "resolver", None)
                if resolver is not None:
                    found = yield _PtrLookup(resolver, self.address)
                    if found:
                        self.host = found
        if name is not None and name.upper() not in (b"[UNAVAILABLE]", b"[TEMPUNAVAIL]"):
            self.host = _s(name).rstrip(".").lower()
        if b"PORT" in changes:
            self.port = int(changes[b"PORT"])
        if b"HELO" in changes:
            self.helo_arg = changes[b"HELO"]
        proto = changes.get(b"PROTO", b"").upper()
        if proto in (b"SMTP", b"ESMTP"):
            self.helo_state = p.HELO if proto == b"SMTP" else p.EHLO
        yield from self._accept_phase(rerun=True)

    # ---------------------------------------------------------------- transactions
    def _reset(self):
        """End of transaction (RSET, HELO/EHLO, end of DATA): hook.reset, then forget the
        envelope and remove the spool file."""
        yield from self._hook_quietly("reset")
        client = self.ctx.client
        client[b"id_trans"] = None
        client[b"msg_file"] = None
        if self.spool is not None:
            self.spool.remove()
            self.spool = None
        self.transaction = None
        self.ident = self.id_sess
        self.ctx.headers = []
        self.ctx.headers_dirty = False
        self.state = self.helo_state


# The method for each command word: _cmd_mail for MAIL ...
_HANDLERS = {verb: "_cmd_" + verb.lower() for verb in p.COMMANDS}


class _SourceRun(Wait):
    """+test mode: one line of Lua, run like a hook."""
    __slots__ = ("session", "source")

    def __init__(self, session, source):
        self.session = session
        self.source = source

    def start(self, resume):
        self.session.engine.run_source(self.session.ctx, self.source, resume)

    def cancel(self):
        _abandon_hook(self.session)


def _lua_text(value):
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    return str(value)


class _Cancelled(Exception):
    pass


class _PtrLookup(Wait):
    __slots__ = ("resolver", "address", "cancelled")

    def __init__(self, resolver, address):
        self.resolver = resolver
        self.address = address
        self.cancelled = False

    def start(self, resume):
        def done(name):
            if not self.cancelled:
                resume(name.lower().rstrip(".") if name else None)
        self.resolver.reverse(self.address, done)

    def cancel(self):
        self.cancelled = True


class _InputPause(Wait):
    """Greeting pause: resumes after `seconds`, or as soon as the client talks."""
    __slots__ = ("session", "seconds", "timer")

    def __init__(self, session, seconds):
        self.session = session
        self.seconds = seconds
        self.timer = None

    def start(self, resume):
        self.timer = self.session.worker.loop.call_later(self.seconds, resume, None)

    def cancel(self):
        if self.timer is not None:
            self.timer.cancel()


def _peer_text(address):
    """A socket's address as text: the kernel's IPv4 text is already canonical (and an
    ipaddress parse per connection is not free); IPv6 goes through _ip_text."""
    if isinstance(address, str) and ":" not in address:
        return address
    return _ip_text(address)


def _ip_text(address):
    """Peer address as text; IPv4-mapped IPv6 shown dotted."""
    if isinstance(address, bytes):
        address = address.decode("ascii")
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _base64(value):
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return None


def _number_text(number):
    return "%d" % number if float(number).is_integer() else repr(number)
