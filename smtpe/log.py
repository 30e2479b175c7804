"""Logging: one line per event, to standard error (foreground, daemontools/multilog) or to
syslog (detached). Lines of a connection carry its session or transaction id."""
import sys
import syslog as _syslog
import time

from .stamps import SecondStamp, process_id

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
_NAMES = {number: name for name, number in LEVELS.items()}


def _iso_time(second):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))


class Log:
    def __init__(self, to_syslog=False, verbose="+warn +info", stream=None):
        self.to_syslog = to_syslog
        self.stream = stream or sys.stderr
        self.words = set()
        self.set_verbose(verbose)
        self._batched = None      # lines waiting for flush(); None: each line written at once
        self._loop = None
        self._clock = SecondStamp(_iso_time)
        if to_syslog:
            _syslog.openlog("smtpe", _syslog.LOG_PID | _syslog.LOG_NDELAY, _syslog.LOG_MAIL)

    def batch(self, loop):
        """Gather the lines of each turn of `loop` and write them at the end of the turn:
        a busy worker makes one write system call per turn instead of one per line, and no
        line waits longer than the turn that logged it."""
        self._loop = loop
        if self._batched is None:
            self._batched = []

    def flush(self):
        lines = self._batched
        if lines:
            self._batched = []
            self._write("".join(lines))

    def unbatch(self):
        """Back to writing each line at once (the loop that flushed is done)."""
        self.flush()
        self._batched = None

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
        line = "%s smtpe[%d] %s: %s\n" % (self._clock.now(), process_id(), _NAMES.get(level, level), message)
        if self._batched is not None:
            if not self._batched:
                self._loop.at_turn_end(self.flush)
            self._batched.append(line)
        else:
            self._write(line)

    def _write(self, text):
        try:
            self.stream.write(text)
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
