"""Sans-IO SMTP server rules: command words, which command is allowed in which state,
argument and path parsing, and the default reply texts (the original's, see
shared/spec/original-behaviour.md §2.6). Knows nothing of sockets, Lua or files."""
import functools
import re
from dataclasses import dataclass, field
from typing import NamedTuple

# (the byte-level reading of command lines and replies is compiled: every message's commands
# and replies pass through it)
from ._speedups.smtpsyntax import COMMANDS, REPLY_CODES, path_argument, reply_bytes, reply_code, split_command

# Session states. "helo state" is the state a transaction reset returns to.
NONE, ACCEPT, HELO, EHLO, MAIL, RCPT, DATA = "none", "accept", "helo", "ehlo", "mail", "rcpt", "data"

# Commands that are only valid in some states; the rest are valid anywhere.
ALLOWED_IN = {
    "MAIL": frozenset({HELO, EHLO}),
    "RCPT": frozenset({MAIL, RCPT}),
    "DATA": frozenset({RCPT}),
}


def is_allowed(verb, state):
    allowed = ALLOWED_IN.get(verb)
    return allowed is None or state in allowed


def helo_argument(arg):
    """HELO/EHLO argument: surrounding whitespace trimmed, at most 255 octets."""
    return arg.strip()[:255]


def mail_parameters(params):
    """ESMTP parameters -> {NAME: value or None} (names upper-cased)."""
    found = {}
    for item in params.split():
        name, sep, value = item.partition(b"=")
        found[name.decode("ascii", "replace").upper()] = value if sep else None
    return found


class PathError(Exception):
    """reason is the status text after the code, e.g. '5.1.7 invalid domain name'."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class PathRules(NamedTuple):
    """parse_path's strictness options. A tuple: it is part of parse_path's cache key, and
    a tuple hashes in C (a frozen dataclass's __hash__ is a Python call per lookup)."""
    angle_brackets: bool = False   # rfc2821-angle-brackets
    local_length: bool = False     # rfc2821-local-length
    domain_length: bool = False    # rfc2821-domain-length


_LOCAL_ATOM = re.compile(rb"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\xff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\xff-]+)*$")
_QUOTED = re.compile(rb'^"([^"\\\r\n]|\\.)*"$')
_LABEL_RULE = rb"[A-Za-z0-9\x80-\xff]([A-Za-z0-9\x80-\xff-]*[A-Za-z0-9\x80-\xff])?"
# a domain without its trailing dot: labels as above, dot-separated (one match, not one per label)
_DOMAIN = re.compile(rb"^%s(\.%s)*$" % (_LABEL_RULE, _LABEL_RULE))


@functools.lru_cache(maxsize=4096)   # a pure function of bytes: the same senders and
def parse_path(token, for_mail, rules=PathRules()):   # recipients come again and again
    """A MAIL/RCPT path -> (address, lower-cased domain). `<>` -> (b'', b'').

    Follows the original's parsePath: the innermost right-most <...> is the path, a source
    route is dropped, whitespace inside brackets is tolerated unless strict, the address keeps
    its case. MAIL domains need a dot; domain literals are refused."""
    kind = "5.1.7" if for_mail else "5.1.3"
    if token.count(b"<") != token.count(b">"):
        raise PathError("5.1.0 imbalanced angle brackets in path")
    opened = token.rfind(b"<")
    if opened < 0:
        if rules.angle_brackets:
            raise PathError("5.1.0 address does not conform to RFC 2821 syntax")
        path = token
    else:
        closed = token.find(b">", opened)
        if closed < 0:
            raise PathError("5.1.0 imbalanced angle brackets in path")
        path = token[opened + 1:closed]
    if rules.angle_brackets and (b" " in path or b"\t" in path):
        raise PathError("5.1.0 address does not conform to RFC 2821 syntax")
    path = _without_blanks(path)
    if path.startswith(b"@"):
        colon = path.find(b":")
        if colon < 0 or not all(hop.startswith(b"@") and len(hop) > 1 for hop in path[:colon].split(b",")):
            raise PathError("5.1.0 invalid source route")
        path = path[colon + 1:]
    if not path:
        return b"", b""
    at = path.rfind(b"@")
    local, domain = (path, b"") if at < 0 else (path[:at], path[at + 1:])
    if not local or not (_LOCAL_ATOM.match(local) or _QUOTED.match(local)):
        raise PathError("%s invalid local part" % kind)
    if rules.local_length and len(local) > 64:
        raise PathError("5.1.0 local-part too long, see RFC 2821 section 4.5.3.1")
    if at >= 0:
        if rules.domain_length and len(domain) > 255:
            raise PathError("5.1.0 domain too long, see RFC 2821 section 4.5.3.1")
        name = domain.rstrip(b".")
        if not domain or not _DOMAIN.match(name):
            raise PathError("%s invalid domain name" % kind)
        if for_mail and b"." not in name:
            raise PathError("%s invalid domain name" % kind)
    elif for_mail and rules.angle_brackets:
        raise PathError("5.1.7 address incomplete")
    return path, domain.lower()


def _without_blanks(path):
    """Remove spaces and tabs a client put around the address parts, not those inside a
    quoted local part."""
    if b'"' not in path:
        return path.replace(b" ", b"").replace(b"\t", b"")
    kept = bytearray()
    quoted = escaped = False
    for byte in path:
        if escaped:
            escaped = False
        elif quoted and byte == 0x5C:
            escaped = True
        elif byte == 0x22:
            quoted = not quoted
        elif not quoted and byte in (0x20, 0x09):
            continue
        kept.append(byte)
    return bytes(kept)


@dataclass
class Transaction:
    """Envelope of the mail transaction in progress (MAIL ... end of DATA)."""
    id: str
    sender: bytes = b""
    recipients: list = field(default_factory=list)   # accepted, domains lower-cased
    spool_path: str = ""


HELP_LINES = (
    "ESMTP supported commands:",
    "    AUTH    DATA    EHLO    HELO    HELP",
    "    NOOP    MAIL    RCPT    RSET    QUIT",
    "",
    "ESMTP commands not implemented:",
    "    ETRN    EXPN    TURN    VRFY",
    "",
    "Administration commands:",
    "    XCLIENT",
    "",
)


class Replies:
    """Default reply texts; `url` is the smtp-error-url option, printed before E000."""

    def __init__(self, host, url=""):
        self.host = host
        self.e = url + "E000"

    def banner(self, id_sess):
        return "220 %s ESMTP %s" % (self.host, id_sess)

    def helo(self, arg, ip, client_host):
        return "250 Hello %s (%s, %s)" % (arg, ip, client_host)

    def ehlo(self, arg, ip, client_host, xclient, pipelining, auth, max_size):
        lines = ["Hello %s (%s, %s)" % (arg, ip, client_host), "ENHANCEDSTATUSCODES"]
        if xclient:
            lines.append("XCLIENT ADDR HELO NAME PORT PROTO")
        if pipelining:
            lines.append("PIPELINING")
        lines.append("8BITMIME")
        if auth:
            lines.append("AUTH PLAIN LOGIN")
        lines.append("SIZE %d" % max_size)
        return "\r\n".join("250-" + line for line in lines[:-1]) + "\r\n250 " + lines[-1]

    def ok(self):
        return "250 2.0.0 OK"

    def mail_ok(self, address):
        return "250 2.1.0 sender <%s> OK" % address

    def rcpt_ok(self, address):
        return "250 2.1.0 recipient <%s> OK" % address

    def data(self):
        return '354 enter mail, end with "." on a line by itself'

    def help(self):
        return "\r\n".join("214-2.0.0 " + line if line else "214-2.0.0" for line in HELP_LINES) + "\r\n214 2.0.0 End"

    def quit(self, id_sess):
        return "221 2.0.0 %s closing connection %s" % (self.host, id_sess)

    def auth_ok(self):
        return "235 2.0.0 %s authenticated" % self.e

    def auth_failed(self):
        return "535 5.7.8 %s authentication failed" % self.e

    def auth_again(self):
        return "503 5.5.1 %s already authenticated" % self.e

    def auth_mechanism(self):
        return "504 5.5.4 %s unknown AUTH mechanism" % self.e

    def auth_syntax(self):
        return "501 5.5.2 %s invalid AUTH response" % self.e

    def auth_cancelled(self):
        return "501 5.0.0 %s AUTH cancelled" % self.e

    def missing_argument(self):
        return "501 5.5.2 %s missing argument" % self.e

    def syntax_error(self):
        return "501 5.5.2 %s syntax error" % self.e

    def xclient_argument(self, attribute):
        return "501 5.5.4 %s invalid argument %s" % (self.e, attribute)

    def xclient_denied(self):
        return "550 5.7.0 %s XCLIENT not permitted" % self.e

    def unknown(self, line):
        return "502 5.5.1 %s %s command unknown" % (self.e, line)

    def out_of_sequence(self, line):
        return "503 5.5.1 %s %s out of sequence" % (self.e, line)

    def path_error(self, reason):
        return "553 %s %s " % (reason, self.e)

    def size_exceeded(self, max_size):
        return "552 5.3.4 %s message size exceeds %d" % (self.e, max_size)

    def null_recipient(self):
        return "550 5.7.1 %s null recipient invalid" % self.e

    def no_recipients(self):
        return "554 5.5.0 %s no recipients" % self.e

    def pipelining_rejected(self):
        return "550 5.3.3 %s pipelining not allowed" % self.e

    def line_too_long(self):
        return "500 5.5.2 %s line too long" % self.e

    def accepted(self, id_trans):
        return "250 2.0.0 %s message %s accepted" % (self.e, id_trans)

    def try_again(self, id_trans):
        return "451 4.4.5 %s try again later %s" % (self.e, id_trans)

    def rejected(self, id_trans):
        return "550 5.7.0 %s message %s rejected" % (self.e, id_trans)

    def empty(self, id_trans):
        return "550 5.6.0 %s message %s is empty" % (self.e, id_trans)

    def default_at_dot(self, code, id_trans):
        if code == 250:
            return self.accepted(id_trans)
        if code == 550:
            return self.rejected(id_trans)
        return self.try_again(id_trans)

    def hook_failed(self):
        return "451 4.3.0 %s internal error, try again later" % self.e

    def rate_client(self, host, ip, count, limit):
        return "421 4.4.5 %s %s [%s] connections %d exceed %d/60s" % (self.e, host, ip, count, limit)

    def internal_error(self):
        return "421 4.3.0 %s internal error" % self.e

    def timeout(self):
        return "421 4.4.2 %s %s connection timed out" % (self.e, self.host)

    def shutting_down(self):
        return "421 4.3.2 %s %s service shutting down" % (self.e, self.host)


def is_positive(code):
    """The original's 'hook result OK': no valid reply (code < 200) or a 2xx."""
    return code < 200 or 200 <= code <= 299
