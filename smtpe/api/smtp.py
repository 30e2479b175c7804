"""Lua `smtp.code.*`, `smtp.sendfile` and `smtp.sendstring` (waiting calls on the shared
SMTP client, smtpe.smtpclient). Both return `ok, n_accepted, replies`: ok is true when the
final reply was 2xx; an unreachable host gives `false, 0, {}` instead of an error."""
import os

from ..hostlist import split_hosts
from ..smtpclient import ERROR, ERROR_CONNECT, ERROR_EOF, ERROR_IO, ERROR_TIMEOUT, Timeouts, send_mail
from ..waits import Callback
from . import string_arg

CODES = {
    "STATUS": 211, "HELP": 214, "WELCOME": 220, "GOODBYE": 221, "AUTH_OK": 235, "OK": 250,
    "USER_NOT_LOCAL": 251, "WAITING": 354, "CLOSING": 421, "AUTH_MECHANISM": 432, "BUSY": 450,
    "TRY_AGAIN_LATER": 451, "NO_STORAGE": 452, "AUTH_TEMP": 454, "BAD_SYNTAX": 500,
    "BAD_ARGUMENTS": 501, "UNKNOWN_COMMAND": 502, "BAD_SEQUENCE": 503, "UNKNOWN_PARAM": 504,
    "AUTH_REQUIRED": 530, "AUTH_WEAK": 534, "AUTH_FAIL": 535, "AUTH_ENCRYPT": 538, "REJECT": 550,
    "UNKNOWN_USER": 551, "OVER_QUOTA": 552, "BAD_ADDRESS": 553, "TRANSACTION_FAILED": 554,
    "ERROR": ERROR, "ERROR_CONNECT": ERROR_CONNECT, "ERROR_TIMEOUT": ERROR_TIMEOUT,
    "ERROR_EOF": ERROR_EOF, "ERROR_IO": ERROR_IO,
}


def install(api):
    table = api.namespace("smtp")
    codes = api.table(**CODES)
    table[b"code"] = codes
    options = api.options

    def timeouts():
        return Timeouts(connect=options.float("smtp-accept-timeout"),
                        command=options.float("smtp-command-timeout"),
                        dot=options.float("smtp-dot-timeout"))

    def arguments(hosts, mail, rcpts):
        if hosts is None or mail is None or rcpts is None:
            raise TypeError("smtp.send*(hosts, mail, rcpts, message): hosts, mail and rcpts are required")
        host_list = split_hosts(hosts if isinstance(hosts, bytes) else list(hosts.values()))
        recipients = [value for value in rcpts.values() if isinstance(value, bytes)]
        if not host_list or not recipients:
            raise ValueError("smtp.send*: need at least one host and one recipient")
        return host_list, string_arg(mail), recipients

    def deliver(hosts, mail, rcpts, source):
        host_list, sender, recipients = arguments(hosts, mail, rcpts)

        def begin(resume):
            def done(result):
                if result.code == 451 and result.host is None:  # no host could be reached
                    resume(False, 0, api.table())
                    return
                replies = api.table(*[reply for reply in result.recipient_replies])
                resume(result.ok, result.accepted, replies)
            state["handle"] = send_mail(api.loop, host_list, sender, recipients, source, timeouts(),
                                        api.engine.host_name, done)

        state = {"handle": None}
        return Callback(begin, lambda: state["handle"] and state["handle"].cancel())

    def sendfile(hosts=None, mail=None, rcpts=None, path=None):
        if path is not None:
            path = os.fsdecode(string_arg(path))
            if not os.path.isfile(path):
                raise ValueError("smtp.sendfile: no such file %r" % path)
        return deliver(hosts, mail, rcpts, path)

    def sendstring(hosts=None, mail=None, rcpts=None, message=None):
        return deliver(hosts, mail, rcpts, string_arg(message) if message is not None else None)

    api.waiting(table, "sendfile", sendfile)
    api.waiting(table, "sendstring", sendstring)
