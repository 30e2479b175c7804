"""Lua `dns.*` (smtpe-api.txt "DNS Support Functions", original-behaviour.md §6, DECISIONS "DNS").

    dns.open() / dns.close()        this connection's DNS context (closed again when the
                                    hook returns, except in +test mode)
    dns.reset()                     drop pending queries and collected answers; stays open
    dns.query(class=IN, type=ANY, name)   send now (PTR: a raw IP becomes its .arpa name)
    answers = dns.wait(all=1)       wait for every query (all) or for any answer (0);
                                    dns.poll is the same call
    dns.ispending()                 queries still out (false when not open)
    dns.isequal(rr1, rr2)           same table, or same type, class, owner and data
    dns.classname(c), dns.typename(t), dns.rcodename(r)
    dns.class.*, dns.type.*, dns.rcode.*

`answers` holds every response collected since dns.open/dns.reset, in order, each also under
the key "CLASS,TYPE,qname." (qname as echoed, with its trailing dot). A query table is
{name, class, type, rcode, answer = {RR...}, authority = {RR...}, extra = {RR...}}; the
three arrays exist for rcode OK only (so NODATA gives answer = {} and NXDOMAIN answer = nil).
A query that got no answer within dns-max-timeout is there with rcode TIMEOUT.
"""
import lupa.lua51 as lua51

from . import flag, integer, string_arg
from .. import dnswire, netaddr
from ..dns import get_resolver
from ..waits import Done, Wait

CLASSES = {"IN": 1, "CS": 2, "CH": 3, "HS": 4, "ANY": 255}
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "NULL": 10, "PTR": 12, "HINFO": 13, "MINFO": 14,
         "MX": 15, "TXT": 16, "AAAA": 28, "DNAME": 39, "ANY": 255}
# dns.rcode: the original's names plus the API text's NOERROR and TIMEOUT
RCODES = {"OK": 0, "NOERROR": 0, "FORMAT": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOT_IMPLEMENTED": 4,
          "REFUSED": 5, "ERRNO": 16, "TIMEDOUT": 17, "TIMEOUT": 17}

UNKNOWN = b"(unknown)"
CLASS_NAMES = {number: name.encode() for name, number in CLASSES.items()}
# the original's name table also knew WKS and A6 (used for keys and dns.typename)
TYPE_NAMES = {number: name.encode() for name, number in TYPES.items()}
TYPE_NAMES.update({11: b"WKS", 38: b"A6"})
RCODE_NAMES = {0: b"OK", 1: b"FORMAT", 2: b"SERVER", 3: b"NXDOMAIN", 4: b"NOT IMPLEMENTED",
               5: b"REFUSED", 16: b"ERRNO", 17: b"TIMED OUT"}

SECTIONS = (("answer", "answer"), ("authority", "authority"), ("additional", "extra"))
NAME_TYPES = (dnswire.TYPE_NS, dnswire.TYPE_CNAME, dnswire.TYPE_PTR, dnswire.TYPE_DNAME)


class DnsContext:
    """One connection's open DNS context: queries out, responses collected (in order), and
    the dns.wait waiting for them."""

    def __init__(self, resolver):
        self.resolver = resolver
        self.queries = set()
        self.responses = []
        self.waiter = None        # (for_all, callback) of a pending dns.wait

    @property
    def pending(self):
        return bool(self.queries)

    def query(self, name, qtype, qclass, on_response=None):
        """Raises dnswire.BadName."""
        handle = []

        def done(response):
            self.queries.discard(handle[0])
            self.responses.append(response)
            if on_response is not None:
                on_response(response)
            self._check()

        handle.append(self.resolver.query(name, qtype, done, qclass=qclass))
        self.queries.add(handle[0])

    def wait(self, for_all, callback):
        self.waiter = (for_all, callback)
        self._check()

    def _check(self):
        if self.waiter is None:
            return
        for_all, callback = self.waiter
        if self.queries and (for_all or not self.responses):
            return
        self.waiter = None
        callback()

    def reset(self):
        queries, self.queries = self.queries, set()
        self.responses = []
        for handle in queries:
            handle.cancel()

    def close(self):
        self.waiter = None
        self.reset()


class _DnsWait(Wait):
    __slots__ = ("context", "for_all", "build")

    def __init__(self, context, for_all, build):
        self.context = context
        self.for_all = for_all
        self.build = build

    def start(self, resume):
        context = self.context
        context.wait(self.for_all, lambda: resume(self.build(context.responses)))

    def cancel(self):
        self.context.waiter = None


def _name_of(names, number):
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    return names.get(number, UNKNOWN)


def _required_int(value, what):
    """luaL_checkint: a number or numeric string, nothing else."""
    if value is None or isinstance(value, bool):
        raise TypeError("bad argument #1 to '%s' (number expected, got %s)"
                        % (what, "no value" if value is None else "boolean"))
    return integer(value)


def _sorted_mx(records):
    """MX records ordered by preference (stable) in the places MX records held."""
    mx = sorted((r for r in records if r.type == dnswire.TYPE_MX), key=lambda r: r.fields["preference"])
    if not mx:
        return records
    ordered = iter(mx)
    return [next(ordered) if r.type == dnswire.TYPE_MX else r for r in records]


def _lower_name(value):
    return value.lower().rstrip(b".") if isinstance(value, bytes) else value


def install(api):
    log = api.log
    lua = api.lua
    dns = api.namespace("dns")
    rawequal = api.globals[b"rawequal"]   # taken now: the script may redefine the global
    init_state = {}                       # the context of hook.init (no connection yet)

    def ident():
        session = getattr(api.current(), "session", None)
        return getattr(session, "ident", None)

    def test_mode(ctx):
        worker = getattr(getattr(ctx, "session", None), "worker", None)
        return bool(getattr(worker, "test_mode", False))

    def current_context():
        ctx = api.current()
        if ctx is None:
            return init_state.get("dns")
        return getattr(ctx, "dns", None)

    def open_():
        if current_context() is not None:
            return
        context = DnsContext(get_resolver(api.loop, api.options))
        ctx = api.current()
        if ctx is None:
            init_state["dns"] = context
            return
        ctx.dns = context
        if not getattr(ctx, "dns_close_registered", False):  # once per connection
            ctx.dns_close_registered = True
            ctx.at_close(lambda: close_context(ctx, getattr(ctx, "dns", None)))
        if not test_mode(ctx):  # +test keeps it open across lines, as the original
            ctx.at_hook_end(lambda: close_context(ctx, context))

    def close_context(ctx, context):
        if context is None:
            return
        context.close()
        if getattr(ctx, "dns", None) is context:
            ctx.dns = None

    def close():
        ctx = api.current()
        context = current_context()
        if context is None:
            return
        if ctx is None:
            init_state.pop("dns", None)
            context.close()
        else:
            close_context(ctx, context)

    def reset():
        context = current_context()
        if context is not None:
            context.reset()

    def query(qclass=None, qtype=None, name=None):
        qclass = integer(qclass, CLASSES["IN"])
        qtype = integer(qtype, TYPES["ANY"])
        name = string_arg(name)
        if not name:
            return
        context = current_context()
        if context is None:
            log.error("dns.query %s without dns.open" % _text(name), ident())
            return
        if qtype == TYPES["PTR"] and b".arpa" not in name.lower():
            name = netaddr.reverse_ip(name, True)
        who = ident()
        on_response = None
        if log.verbose("dns"):
            log.info("dns query %s %s %s" % (_text(CLASS_NAMES.get(qclass, UNKNOWN)),
                                              _text(TYPE_NAMES.get(qtype, UNKNOWN)), _text(name)), who)

            def on_response(response):
                rcode = _text(RCODE_NAMES.get(response.rcode, UNKNOWN))
                log.info("dns answer %s rcode=%s %s" % (_text(response.name), rcode, response.error or ""), who)
        try:
            context.query(name, qtype, qclass, on_response)
        except dnswire.BadName as exc:
            log.error("dns.query: %s" % exc, who)

    def wait(for_all=None):
        context = current_context()
        if context is None:
            return Done(api.table())
        return _DnsWait(context, flag(for_all, True), answers_table)

    def ispending():
        context = current_context()
        return context is not None and context.pending

    # -- tables --------------------------------------------------------------------------
    def answers_table(responses):
        answers = lua.table()
        for index, response in enumerate(responses, 1):
            entry = query_table(response)
            answers[index] = entry
            answers[b"%s,%s,%s" % (_name_of(CLASS_NAMES, response.qclass),
                                   _name_of(TYPE_NAMES, response.qtype), response.name)] = entry
        return answers

    def query_table(response):
        entry = api.table(name=response.name, rcode=response.rcode)
        entry[b"class"] = response.qclass
        entry[b"type"] = response.qtype
        message = response.message
        if response.rcode == 0 and message is not None:
            for attribute, key in SECTIONS:
                records = [r for r in getattr(message, attribute) if r.fields is not None]
                entry[key.encode()] = lua.table(*[rr_table(r) for r in _sorted_mx(records)])
        return entry

    def rr_table(record):
        table = api.table(name=record.name, ttl=record.ttl)
        table[b"class"] = record.rclass
        table[b"type"] = record.type
        for key, value in record.fields.items():
            table[key.encode()] = value
        return table

    # -- names and comparison ------------------------------------------------------------
    def classname(value=None):
        return _name_of(CLASS_NAMES, _required_int(value, "classname"))

    def typename(value=None):
        return _name_of(TYPE_NAMES, _required_int(value, "typename"))

    def rcodename(value=None):
        return _name_of(RCODE_NAMES, _required_int(value, "rcodename"))

    def isequal(*args):
        if len(args) != 2:
            return False
        a, b = args
        if lua51.lua_type(a) != "table" or lua51.lua_type(b) != "table":
            return False
        if rawequal(a, b):
            return True
        if a[b"type"] != b[b"type"] or a[b"class"] != b[b"class"]:
            return False
        if _lower_name(a[b"name"]) != _lower_name(b[b"name"]):
            return False
        rtype = a[b"type"]
        if rtype in NAME_TYPES:
            return _lower_name(a[b"value"]) == _lower_name(b[b"value"])
        if rtype == dnswire.TYPE_MX:
            return (a[b"preference"] == b[b"preference"]
                    and _lower_name(a[b"value"]) == _lower_name(b[b"value"]))
        if rtype in (dnswire.TYPE_A, dnswire.TYPE_AAAA, dnswire.TYPE_TXT, dnswire.TYPE_NULL):
            return a[b"value"] == b[b"value"]
        if rtype == dnswire.TYPE_SOA:
            return a[b"serial"] == b[b"serial"]
        return True

    dns[b"open"] = open_
    dns[b"close"] = close
    dns[b"reset"] = reset
    dns[b"query"] = query
    dns[b"ispending"] = ispending
    dns[b"isequal"] = isequal
    dns[b"classname"] = classname
    dns[b"typename"] = typename
    dns[b"rcodename"] = rcodename
    dns[b"poll"] = api.waiting(dns, "wait", wait)
    for key, values in (("class", CLASSES), ("type", TYPES), ("rcode", RCODES)):
        table = api.table()
        for name, number in values.items():
            table[name.encode()] = number
        dns[key.encode()] = table


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
