"""Lua `smtp.code.*`, `smtp.sendfile(hosts, mail, rcpts, path)` and
`smtp.sendstring(hosts, mail, rcpts, message)` (original-behaviour.md §5.3, DECISIONS.md).

Both are waiting calls on the shared client (smtpe/_speedups/smtpclient.pyx) and return
`ok, n_accepted, replies`: ok is a boolean, true when the final reply was 2xx; n_accepted
counts recipients answered 250 or 251; replies holds per recipient the first line of its
RCPT reply, or its address when it was not reached. When no host greets, or the dialogue
fails before the recipients (greeting, EHLO/HELO, MAIL), the result is `false, 0, {}`: the
original raised a Lua error when no host answered.

hosts: an array of host strings (`name`, `name:port`, `[IPv6]:port`, `/unix/path`) or one
string listing them; mail: the sender ("" is the null sender); rcpts: an array of addresses
(non-strings skipped) or one address; the 4th argument nil means call-ahead (stop after
RCPT). Bad arguments raise a Lua error, as in the original. Timeouts: smtp-accept-timeout to
connect, smtp-command-timeout per reply, smtp-dot-timeout for the final reply, read at each
call; EHLO names us as `smtpe.host`.
"""
import os

from ..hostlist import split_hosts
from .._speedups.smtpclient import ERROR, ERROR_CONNECT, ERROR_EOF, ERROR_IO, ERROR_TIMEOUT, Timeouts, send_mail
from ..waits import Callback
from . import string_arg

CODES = {
    "STATUS": 211, "HELP": 214, "WELCOME": 220, "GOODBYE": 221, "AUTH_OK": 235, "OK": 250,
    "USER_NOT_LOCAL": 251, "WAITING": 354, "CLOSING": 421, "AUTH_MECHANISM": 432, "BUSY": 450,
    "TRY_AGAIN_LATER": 451, "NO_STORAGE": 452, "AUTH_TEMP": 454, "BAD_SYNTAX": 500,
    "BAD_ARGUMENTS": 501, "UNKNOWN_COMMAND": 502, "BAD_SEQUENCE": 503, "UNKNOWN_PARAM": 504,
    "AUTH_REQUIRED": 530, "AUTH_WEAK": 534, "AUTH_FAIL": 535, "AUTH_ENCRYPT": 538, "REJECT": 550,
    "UNKNOWN_USER": 551, "OVER_QUOTA": 552, "BAD_ADDRESS": 553, "TRANSACTION_FAILED": 554,
    # failures that are not SMTP replies, numbered as the original numbered them
    "ERROR": ERROR, "ERROR_CONNECT": ERROR_CONNECT, "ERROR_TIMEOUT": ERROR_TIMEOUT,
    "ERROR_EOF": ERROR_EOF, "ERROR_IO": ERROR_IO,
}


def install(api):
    table = api.namespace("smtp")
    table[b"code"] = api.table(**CODES)
    options = api.options

    def timeouts():
        return Timeouts(connect=options.float("smtp-accept-timeout"),
                        command=options.float("smtp-command-timeout"),
                        dot=options.float("smtp-dot-timeout"))

    def helo_name():
        # Read at each call: the engine's name is what smtpe.host shows (tests may set it).
        return getattr(api.engine, "host_name", None)

    def lua_results(recipients, result):
        if result.host is None or not result.mail_accepted:
            return False, 0, api.table()
        replies = [reply if reply is not None else address
                   for reply, address in zip(result.recipient_replies, recipients)]
        return result.ok, result.accepted, api.table(*replies)

    def log_failure(result):
        if not result.ok and api.log.verbose("smtp"):
            ctx = api.current()
            session = getattr(ctx, "session", None) if ctx is not None else None
            api.log.info("smtp.send: %s" % result.describe(), getattr(session, "ident", None))

    def deliver(name, hosts, mail, rcpts, source):
        host_list, sender, recipients = _arguments(name, hosts, mail, rcpts)
        handle = []

        def begin(resume):
            def done(result):
                log_failure(result)
                resume(*lua_results(recipients, result))
            handle.append(send_mail(api.loop, host_list, sender, recipients, source, timeouts(),
                                    helo_name(), done))

        return Callback(begin, lambda: handle and handle[0].cancel())

    def sendfile(hosts=None, mail=None, rcpts=None, path=None):
        if path is not None:
            api.engine.spool_path_used(string_arg(path), read_only=True)
            path = os.fsdecode(string_arg(path))
            if not os.path.isfile(path):
                raise ValueError("smtp.sendfile: %s: no such file" % path)
        return deliver("sendfile", hosts, mail, rcpts, path)

    def sendstring(hosts=None, mail=None, rcpts=None, message=None):
        return deliver("sendstring", hosts, mail, rcpts, string_arg(message))

    api.waiting(table, "sendfile", sendfile)
    api.waiting(table, "sendstring", sendstring)


def _arguments(name, hosts, mail, rcpts):
    """Check the Lua arguments -> (host strings, sender bytes, [recipient bytes])."""
    if mail is None:
        raise TypeError("smtp.%s: mail (the sender, \"\" for <>) is required" % name)
    sender = string_arg(mail)
    host_list = split_hosts(hosts if isinstance(hosts, bytes) else _strings(hosts))
    if not host_list:
        raise ValueError("smtp.%s: hosts must hold at least one host" % name)
    recipients = _strings(rcpts)
    if not recipients:
        raise ValueError("smtp.%s: rcpts must hold at least one address" % name)
    return host_list, sender, recipients


def _strings(value):
    """A Lua string, or the strings of a Lua array in order (other entries skipped)."""
    if value is None:
        return []
    if isinstance(value, (bytes, int, float)) and not isinstance(value, bool):
        return [string_arg(value)]
    if isinstance(value, bool) or not hasattr(value, "__getitem__"):
        raise TypeError("expected a table or a string, got %s" % type(value).__name__)
    items = []
    index = 1
    while True:  # the array part, as the original walked it (1..n until nil)
        item = value[index]
        if item is None:
            return items
        if isinstance(item, bytes):
            items.append(item)
        index += 1
