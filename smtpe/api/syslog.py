"""Lua `syslog.*`: log through smtpe's log (stderr lines with -daemon, syslog when
detached). Inside a connection each line carries its transaction or session id."""
import syslog as _syslog

from . import integer, string_arg as text

_LEVELS = ("LOG_EMERG", "LOG_ALERT", "LOG_CRIT", "LOG_ERR", "LOG_WARNING", "LOG_NOTICE",
           "LOG_INFO", "LOG_DEBUG")
_OPTIONS = ("LOG_PID", "LOG_CONS", "LOG_ODELAY", "LOG_NDELAY", "LOG_NOWAIT", "LOG_PERROR")
_FACILITIES = ("LOG_KERN", "LOG_USER", "LOG_MAIL", "LOG_DAEMON", "LOG_AUTH", "LOG_SYSLOG",
               "LOG_LPR", "LOG_NEWS", "LOG_UUCP", "LOG_CRON", "LOG_AUTHPRIV", "LOG_FTP",
               "LOG_LOCAL0", "LOG_LOCAL1", "LOG_LOCAL2", "LOG_LOCAL3", "LOG_LOCAL4",
               "LOG_LOCAL5", "LOG_LOCAL6", "LOG_LOCAL7")
_FALLBACK = {"LOG_PERROR": 0x20, "LOG_AUTHPRIV": 10 << 3, "LOG_FTP": 11 << 3}


def install(api):
    table = api.namespace("syslog")
    log = api.log
    for name in _LEVELS + _OPTIONS + _FACILITIES:
        table[name.encode()] = getattr(_syslog, name, _FALLBACK.get(name, 0))

    def ident():
        ctx = api.current()
        return ctx.session.ident if ctx is not None and ctx.session is not None else None

    def write(level, message):
        log.log(integer(level, _syslog.LOG_DEBUG), text(message, b""), ident())

    def opened(ident_name=None, options=None, facility=None):
        # smtpe owns the log destination; opening again is accepted and ignored.
        return None

    table[b"open"] = opened
    table[b"close"] = lambda: None
    table[b"log"] = write
    table[b"error"] = lambda message: write(_syslog.LOG_ERR, message)
    table[b"info"] = lambda message: write(_syslog.LOG_INFO, message)
    table[b"debug"] = lambda message: write(_syslog.LOG_DEBUG, message)
