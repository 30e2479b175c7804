"""Logging: one line per event, to standard error (foreground, daemontools/multilog) or to
syslog (detached). Lines of a connection carry its session or transaction id."""
import sys
import syslog as _syslog
import time

from .stamps import SecondStamp, process_id

LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
_NAMES = {number: name for name, number in LEVELS.items()}


def _line_prefixes(second):
    """(process id, time stamp, the prefix of a line at each level 0-7) for `second`: a line
    is then one format, not a clock, a process id and a level name looked up per line."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
    pid = process_id()
    return (pid, stamp) + tuple("%s smtpe[%d] %s: " % (stamp, pid, _NAMES[level]) for level in range(8))


class Log:
    def __init__(self, to_syslog=False, verbose="+warn +info", stream=None):
        self.to_syslog = to_syslog
        self.stream = stream or sys.stderr
        self.words = set()
        self.set_verbose(verbose)
        self._batched = None      # lines waiting for flush(); None: each line written at once
        self._loop = None
        self._prefixes = SecondStamp(_line_prefixes)
        self._turn_prefixes = None   # those of the loop turn whose lines are being gathered
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
        self._line(level, message, ident)

    def _line(self, level, message, ident):
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        if self.to_syslog:
            _syslog.syslog(level, "%s %s" % (ident, message) if ident else message)
            return
        batched = self._batched
        if batched is None:
            prefixes = self._current_prefixes()
        elif batched:
            prefixes = self._turn_prefixes   # (a turn lasts milliseconds: its lines share a stamp)
        else:
            self._loop.at_turn_end(self.flush)
            prefixes = self._turn_prefixes = self._current_prefixes()
        prefix = prefixes[level + 2] if 0 <= level <= 7 else "%s smtpe[%d] %s: " % (
            prefixes[1], prefixes[0], level)
        line = "%s%s %s\n" % (prefix, ident, message) if ident else "%s%s\n" % (prefix, message)
        if batched is None:
            self._write(line)
        else:
            batched.append(line)

    def _current_prefixes(self):
        prefixes = self._prefixes.now()
        if prefixes[0] != process_id():     # forked within this second: the child's own id
            self._prefixes.second = None
            prefixes = self._prefixes.now()
        return prefixes

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    # (each level's method makes its own check and formats the line: one call fewer for the
    # lines a busy worker logs several times per message)
    def error(self, message, ident=None):
        self._line(3, message, ident)

    def warn(self, message, ident=None):
        if "warn" in self.words:
            self._line(4, message, ident)

    def info(self, message, ident=None):
        if "info" in self.words:
            self._line(6, message, ident)

    def debug(self, message, ident=None):
        if "debug" in self.words:
            self._line(7, message, ident)
