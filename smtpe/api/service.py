"""Lua `service.*` (smtpe-api.txt "Services Framework", original-behaviour.md §7.1-7.5).

`service.clamd`, `service.spamd`, `service.http.request` and `service.client.write` start a
job and return true (false for bad arguments: no file, unknown method, bad URL ...);
`service.wait(all)` waits for all jobs (or for one, all = 0) and returns the results recorded
since the last wait: `{clamd = {...}, spamd = {...}, http = {service_name = "http", {...}, ...}}`
(nil when there are none). A job that fails or times out still completes: its entry carries
`error`. `service.reset()` abandons every job and result. Jobs belong to the connection
(ctx.services) and are cancelled when it closes.
"""
import os

from . import flag, string_arg as text
from ..hostlist import split_hosts
from ..services import clamd as clamd_service
from ..services import http as http_service
from ..services import spamd as spamd_service
from ..waits import Wait

DEFAULT_HOSTS = ["127.0.0.1"]

HTTP_CODES = {
    "GO": 0, "DROP": 10, "CONTINUE": 100, "SWITCH_PROTOCOL": 101,
    "OK": 200, "CREATED": 201, "ACCEPTED": 202, "NON_AUTH_INFO": 203, "NO_CONTENT": 204,
    "RESET_CONTENT": 205, "PARTIAL_CONTENT": 206,
    "MULTIPLE_CHOICES": 300, "MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303,
    "NOT_MODIFIED": 304, "USE_PROXY": 305, "TEMPORARY_REDIRECT": 307,
    "BAD_REQUEST": 400, "UNAUTHORIZED": 401, "PAYMENT_REQUIRED": 402, "FORBIDDEN": 403,
    "NOT_FOUND": 404, "METHOD_NOT_ALLOWED": 405, "NOT_ACCEPTABLE": 406,
    "PROXY_AUTH_REQUIRED": 407, "REQUEST_TIMEOUT": 408, "CONFLICT": 409, "GONE": 410,
    "LENGTH_REQUIRED": 411, "PRECOND_FAILED": 412, "REQUEST_TOO_LARGE": 413,
    "URI_TOO_LONG": 414, "UNSUPPORTED_MEDIA": 415, "RANGE_NOT_POSSIBLE": 416,
    "EXPECTATION_FAILED": 417,
    "INTERNAL": 500, "NOT_IMPLEMENTED": 501, "BAD_GATEWAY": 502, "SERVICE_UNAVAILABLE": 503,
    "GATEWAY_TIMEOUT": 504, "VERSION_NOT_SUPPORTED": 505,
}


class Services:
    """One connection's jobs, the results not yet collected, and the hook waiting for them."""

    def __init__(self):
        self.pending = set()
        self.results = {}       # "clamd"/"spamd" -> dict (one slot each), "http" -> [dict]
        self.completed = 0      # jobs finished since the last wait returned
        self.waiter = None      # (for_all, resume) of a pending service.wait

    def start(self, job):
        """Track `job` (start() and cancel()) and start it; its on_done must come from
        self.completion(job)."""
        self.pending.add(job)
        try:
            job.start()
        except Exception:
            self.pending.discard(job)
            raise

    def completion(self, job, record=True):
        def done(result):
            if job not in self.pending:
                return  # reset or closed meanwhile
            self.pending.discard(job)
            self.completed += 1
            if record:
                self._record(result)
            self._check()
        return done

    def _record(self, result):
        name = result["service_name"]
        if name == "http":
            self.results.setdefault("http", []).append(result)
        else:
            self.results[name] = result  # the original kept one slot per kind

    def wait(self, for_all, resume):
        self.waiter = (for_all, resume)
        self._check()

    def _check(self):
        if self.waiter is None:
            return
        for_all, resume = self.waiter
        if self.pending and (for_all or not self.completed):
            return
        self.waiter = None
        results, self.results, self.completed = self.results, {}, 0
        resume(results)

    def reset(self):
        jobs, self.pending = self.pending, set()
        self.results, self.completed = {}, 0
        for job in jobs:
            job.cancel()

    def close(self):
        self.waiter = None
        self.reset()


class _ServiceWait(Wait):
    __slots__ = ("services", "for_all", "to_lua")

    def __init__(self, services, for_all, to_lua):
        self.services = services
        self.for_all = for_all
        self.to_lua = to_lua

    def start(self, resume):
        self.services.wait(self.for_all, lambda results: resume(self.to_lua(results)))

    def cancel(self):
        self.services.waiter = None


class _ClientWrite:
    """service.client.write as a job: bytes queued to the SMTP client through the session."""

    def __init__(self, session, data, timeout):
        self.session = session
        self.data = data
        self.timeout = timeout
        self.on_done = None
        self.cancelled = False

    def start(self):
        self.session.write_raw(self.data, self.timeout, self._written)

    def _written(self, ok):
        if self.cancelled:
            return
        result = {"service_name": "client"}
        if not ok:
            result["error"] = "client write failed or timed out after %gs" % self.timeout
        self.on_done(result)

    def cancel(self):
        self.cancelled = True  # the bytes may still go out; nobody waits for them


def _seconds(value, default):
    """A timeout argument in seconds; nil, non-numbers and values <= 0 mean the default."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return default
    return float(value)


def _hosts(value):
    """nil -> the default; a string (split on ; , space) or a Lua array of strings."""
    if value is None:
        return list(DEFAULT_HOSTS)
    if isinstance(value, (bytes, str)):
        hosts = split_hosts(value)
    elif hasattr(value, "values"):  # a Lua table: its array part, in order
        hosts = split_hosts([value[index] for index in range(1, len(value) + 1)])
    else:
        raise TypeError("host list must be a string or an array of strings")
    if not hosts:
        raise ValueError("empty host list")
    return hosts


def _readable_file(path):
    return path is not None and os.path.isfile(path) and os.access(path, os.R_OK)


def install(api):
    log = api.log
    service = api.namespace("service")
    init_services = Services()  # for calls made from hook.init (no connection yet)

    def state():
        ctx = api.current()
        if ctx is None:
            return init_services
        services = getattr(ctx, "services", None)
        if services is None:
            services = ctx.services = Services()
            ctx.at_close(services.close)
        return services

    def ident():
        session = getattr(api.current(), "session", None)
        return getattr(session, "ident", None)

    def logged(job, record=True):
        """Wrap the job's completion with a log line (failures always, others if verbose)."""
        services = state()
        done = services.completion(job, record)
        who = ident()  # now: when the job ends another connection's hook may be running

        def on_done(result):
            error = result.get("error")
            name = result["service_name"]
            if error:
                log.warn("service %s" % error, who)
            elif log.verbose(name) or log.verbose("service"):
                log.info("service %s %s: %s" % (name, result.get("service_host"),
                                               _summary(result)), who)
            done(result)
        return services, on_done

    def launch(make_job, record=True):
        """Build a job, give it its on_done and start it: True, or False for bad arguments."""
        try:
            job = make_job()
        except (ValueError, TypeError, OSError) as exc:
            log.warn("service: %s" % exc, ident())
            return False
        services, job.on_done = logged(job, record)
        services.start(job)
        return True

    def clamd(path=None, hosts=None, timeout=None):
        path = text(path)
        ctx = api.current()
        spool = _spool_in_memory(ctx) if _is_own_spool(ctx, path) else None
        if spool is not None:   # bytes for a remote clamd; a local one gets the file written
            data, make_file = spool.snapshot(), lambda: spool.materialise(keep_memory=True)
        else:
            api.engine.spool_path_used(path, read_only=True)
            if not _readable_file(path):
                return False
            data = make_file = None
        return launch(lambda: clamd_service.ClamdJob(
            api.loop, path, _hosts(hosts), _seconds(timeout, clamd_service.DEFAULT_TIMEOUT), None,
            data=data, make_file=make_file))

    def spamd(path=None, hosts=None, method=None, user=None, timeout=None):
        path = text(path)
        method = (text(method) or b"CHECK").upper()
        ctx = api.current()
        own_spool = _is_own_spool(ctx, path)
        # PROCESS replaces the file: it needs one
        spool = _spool_in_memory(ctx) if own_spool and method != b"PROCESS" else None
        if spool is None:
            api.engine.spool_path_used(path, read_only=method != b"PROCESS")
            if not _readable_file(path):
                return False
        if method == b"PROCESS" and own_spool and _spool_still_written(ctx):
            raise RuntimeError("service.spamd PROCESS needs the complete message (use it in hook.dot)")
        message = _message_parts(ctx) if own_spool else {}
        on_processed = _processed_updater(ctx) if own_spool else None
        data = spool.snapshot() if spool is not None else None
        return launch(lambda: spamd_service.SpamdJob(
            api.loop, path, _hosts(hosts), _seconds(timeout, spamd_service.DEFAULT_TIMEOUT),
            None, method=method, user=text(user), on_processed=on_processed, data=data, **message))

    def http_request(url=None, method=None, modified_since=None, post=None):
        url = text(url)
        if not url:
            return False
        method = (text(method) or b"HEAD").upper()

        def make():
            since = _modified_since(modified_since)
            return http_service.HttpJob(api.loop, url, None, method=method,
                                        modified_since=since, post=text(post),
                                        ident=(ident() or "").encode() or None)
        return launch(make)

    def client_write(data=None, timeout=None):
        ctx = api.current()
        session = getattr(ctx, "session", None)
        if session is None or data is None:
            return False
        seconds = _seconds(timeout, api.options.float("smtp-reply-timeout"))
        return launch(lambda: _ClientWrite(session, text(data), seconds), record=False)

    def wait(for_all=None):
        return _ServiceWait(state(), flag(for_all, True), to_lua)

    def reset():
        state().reset()

    def to_lua(results):
        """Results dict -> the Lua table service.wait returns (nil when empty)."""
        if not results:
            return None
        table = api.table()
        for name, value in results.items():
            if name == "http":
                entries = api.table_from(value)
                entries[b"service_name"] = b"http"
                table[b"http"] = entries
            else:
                table[name.encode()] = api.table_from(value)
        return table

    service[b"clamd"] = clamd
    service[b"spamd"] = spamd
    service[b"reset"] = reset
    api.waiting(service, "wait", wait)
    client = api.table()
    client[b"write"] = client_write
    service[b"client"] = client
    http = api.table()
    http[b"request"] = http_request
    codes = api.table()
    for name, number in HTTP_CODES.items():
        codes[name.encode()] = number
        codes[number] = name.encode()
    http[b"code"] = codes
    service[b"http"] = http


def _summary(result):
    for key in ("reply", "rcode"):
        value = result.get(key)
        if value is not None:
            value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return value.strip().split("\n")[0][:200]
    return "done"


def _modified_since(value):
    """modified_since: nil/0 -> unconditional; a number -> epoch seconds; a string -> an
    RFC 2822 or ctime() date (ValueError if unreadable)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) or None
    return http_service.date_to_seconds(text(value)) or None


def _spool_path(ctx):
    """The connection's own spool file (bytes), from the session's transaction. Read from
    Python, not from the `client` table: lupa 2.8 misreads a table of the master state
    (such as ctx.client) while a hook's coroutine is running ((thread, value) pairs)."""
    path = getattr(getattr(ctx.session, "transaction", None), "spool_path", None)
    return os.fsencode(path) if path else None


def _message_parts(ctx):
    """What spamd should send for the connection's own spool file: the (possibly edited)
    header list and the body offset when the session knows them, and the envelope sender."""
    parts = {}
    body_offset = getattr(ctx, "body_offset", None)
    if body_offset is not None:
        parts["headers"] = list(ctx.headers)
        parts["body_offset"] = body_offset
    transaction = getattr(ctx.session, "transaction", None)
    sender = getattr(transaction, "sender", None)
    if isinstance(sender, bytes):
        parts["return_path"] = sender
    return parts


def _processed_updater(ctx):
    """After PROCESS rewrote the spool file: its header list and body offset are new, and
    any header.* edits made before are already inside it."""
    def update(headers, body_offset):
        ctx.headers[:] = headers
        ctx.body_offset = body_offset
        ctx.headers_dirty = False
    return update


def _is_own_spool(ctx, path):
    """`path` names the running connection's spool file."""
    return ctx is not None and path is not None and path == _spool_path(ctx)


def _spool_in_memory(ctx):
    """The connection's Spool when memory holds the whole message (DATA is over): a scanner
    can be given the bytes without a file. Else None."""
    spool = getattr(ctx.session, "spool", None)
    if spool is None or spool.writing or spool.on_disk:
        return None
    return spool


def _spool_still_written(ctx):
    """True while DATA is still being spooled (the session's Spool has its file open)."""
    spool = getattr(ctx.session, "spool", None)
    return spool is not None and spool.writing
