"""DATA: receiving the message and the end-of-data decision.

`end_of_data(session)` is part of the session's dialogue (a generator): it reads the message
through the line reader (strict CRLF.CRLF, unstuffed), hands it to the spool as it arrives
(smtpe/spool.py: memory first), feeds the message scanner and the content hooks, then decides (shared/spec/
DECISIONS.md, "DATA end and forwarding"): forward unless hook.dot said no or hook.forward
answered; the client hears 250 only after the smart host's 250. The scanner streams only the
top headers (and body lines for hook.body): `mime.parts` and `uri.found` come from a scan of
the spooled message that runs only if a hook reads them (smtpe/api/mime.py).
"""
from . import protocol as p
from ._speedups.scanner import BODY, EOH, HEADER, MessageScanner
from .api import mime as mime_api
from ._speedups.smtpclient import send_mail
from .waits import READ, Wait

CRLF = b"\r\n"


def end_of_data(session):
    transaction = session.transaction
    engine = session.engine
    # a superset of the defined hooks (a hook set to nil stays listed): calling one that is
    # gone costs a call that answers "not defined", nothing more
    defined = engine.defined
    has = {"content": b"content" in defined, "header": b"header" in defined, "eoh": b"eoh" in defined,
           "body": b"body" in defined}
    reader = session.reader
    reader.start_data()
    session._idle_timeout = session.options.float("smtp-data-timeout")
    spool = session.spool
    # Without a spool nothing keeps the message for a MIME scan on demand: scan as it arrives.
    scanner = MessageScanner(body_lines=has["body"], mime=spool is None)
    max_size = session.options.int("smtp-max-size")
    held = None                      # (code, text) returned by a content hook
    size = 0
    while True:
        chunk, done = reader.read_data()
        if chunk:
            size += len(chunk)
            if spool is not None and not (max_size and size > max_size):
                spool.write(chunk)
            if has["content"]:
                held = _hold((yield from session._hook("content", chunk)), held)
            events = scanner.feed(chunk)
            if events:   # (none once the headers are over, unless hook.body wants lines)
                held = yield from _scanner_events(session, events, has, held)
        if done:
            break
        if not chunk:
            yield READ
    held = yield from _scanner_events(session, scanner.finish(), has, held)
    session._idle_timeout = session.options.float("smtp-command-timeout")
    if spool is not None:
        spool.close()
    session.ctx.client[b"message_length"] = size

    reply = yield from _decide(session, transaction, scanner, size, max_size, held)
    sent = yield from session._send(reply)
    outcome = "accepted" if 200 <= sent <= 299 else "rejected" if sent >= 500 else "deferred"
    session.log.info("message %s %s size=%d: %s" % (transaction.id, outcome, size,
                                                    reply.decode("latin-1", "replace").split("\r\n")[0].strip()),
                     session.ident)
    yield from session._reset()


def _hold(result, held):
    """Keep the first valid reply of content/header/eoh/body for the end of DATA."""
    code, text = result
    if held is None and text is not None:
        return code, text
    return held


def _scanner_events(session, events, has, held):
    headers = session.ctx.headers
    for kind, value in events:
        if kind == HEADER:
            headers.append(value)
            if has["header"]:
                held = _hold((yield from session._hook("header", value)), held)
        elif kind == EOH:
            if has["eoh"]:
                held = _hold((yield from session._hook("eoh")), held)
        elif kind == BODY and has["body"]:
            held = _hold((yield from session._hook("body", value)), held)
    return held


def _decide(session, transaction, scanner, size, max_size, held):
    """-> the end-of-DATA reply (bytes with CRLF)."""
    _b = p.reply_bytes
    replies = session.replies
    tid = transaction.id
    if size == 0:
        return _b(replies.empty(tid))
    if max_size and size > max_size:
        return _b(replies.size_exceeded(max_size))
    if session.reader.data_line_too_long:
        return _b(replies.line_too_long())
    # Where the body starts in the spool file (header edits and spamd need it; a spamd
    # PROCESS that rewrites the file moves it).
    # The scanner reports EOH at the end even without a blank line; eoh_offset stays 0 then.
    session.ctx.body_offset = scanner.eoh_offset if scanner.eoh_offset > 0 else None
    mime_api.at_dot(session.ctx, scanner, session.spool)
    path = session.spool.path_bytes if session.spool is not None else b""
    code, text = yield from session._hook("dot", path)
    if text is None and held is not None:
        code, text = held
    if text is not None and not p.is_positive(code):
        return text                              # hook.dot (or a content hook) said no
    if session.spool is not None and session.ctx.headers_dirty:
        try:
            ctx = session.ctx   # (spamd in a later hook sends the header list and the body)
            ctx.body_offset = session.spool.rewrite_headers(ctx.headers, ctx.body_offset)
            ctx.headers_dirty = False
        except OSError as exc:
            session.log.error("spool rewrite: %s" % exc, session.ident)
            return _b(replies.try_again(tid))
    if b"forward" in session.engine.defined:     # (the recipients table only if it is used)
        recipients = session.engine.lua.table(*transaction.recipients)
        _, forward_text = yield from session._hook("forward", path, transaction.sender, recipients)
        if forward_text is not None and not session.hook_failed:
            return forward_text                  # the script delivered (or refused) it
    hosts = session.worker.smart_hosts
    if hosts and session.spool is not None:
        result = yield _Forward(session, hosts, transaction)
        if 200 <= result.code <= 299:
            return text if text is not None else _b(replies.accepted(tid))
        session.log.warn("forward %s failed: %s" % (tid, result.describe()), session.ident)
        if 500 <= result.code <= 599:
            return _b(replies.rejected(tid))
        return _b(replies.try_again(tid))
    if text is not None:
        return text
    return _b(replies.default_at_dot(session.options.int("smtp-default-at-dot"), tid))


class _Forward(Wait):
    """Deliver the spool file to the smart hosts."""
    __slots__ = ("session", "hosts", "transaction", "handle")

    def __init__(self, session, hosts, transaction):
        self.session = session
        self.hosts = hosts
        self.transaction = transaction
        self.handle = None

    def start(self, resume):
        session = self.session
        self.handle = send_mail(
            session.worker.loop, self.hosts, self.transaction.sender, self.transaction.recipients,
            session.spool.contents() or self.transaction.spool_path, session.worker.timeouts,
            session.worker.helo_name, resume)

    def cancel(self):
        if self.handle is not None and hasattr(self.handle, "cancel"):
            self.handle.cancel()
