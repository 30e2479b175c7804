"""Logging: one line per event, to standard error (foreground, daemontools/multilog) or to
syslog (detached). Lines of a connection carry its session or transaction id."""
import os
import sys
import syslog as _syslog
import time

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
_NAMES = {number: name for name, number in LEVELS.items()}


class Log:
    def __init__(self, to_syslog=False, verbose="+warn +info", stream=None):
        self.to_syslog = to_syslog
        self.stream = stream or sys.stderr
        self.words = set()
        self.set_verbose(verbose)
        if to_syslog:
            _syslog.openlog("smtpe", _syslog.LOG_PID | _syslog.LOG_NDELAY, _syslog.LOG_MAIL)

    def set_verbose(self, text):
        for word in text.replace(";", " ").split():
            if word[0] in "+-":
                (self.words.add if word[0] == "+" else self.words.discard)(word[1:].lower())
            else:
                name, _, value = word.partition("=")
                (self.words.discard if value in ("0", "-") else self.words.add)(name.lower())

    def verbose(self, word):
        return word in self.words

    def log(self, level, message, ident=None):
        if level == 7 and "debug" not in self.words:
            return
        if level == 6 and "info" not in self.words:
            return
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        if ident:
            message = "%s %s" % (ident, message)
        if self.to_syslog:
            _syslog.syslog(level, message)
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self.stream.write("%s smtpe[%d] %s: %s\n" % (stamp, os.getpid(), _NAMES.get(level, level), message))
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def error(self, message, ident=None):
        self.log(3, message, ident)

    def warn(self, message, ident=None):
        if "warn" in self.words:
            self.log(4, message, ident)

    def info(self, message, ident=None):
        self.log(6, message, ident)

    def debug(self, message, ident=None):
        self.log(7, message, ident)
