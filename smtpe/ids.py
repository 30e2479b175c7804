"""Session and transaction identifiers in the original's format.

id_sess: six base-62 "time62" digits of the local time (years since 1900 mod 62, month,
day-1, hour, minute, second), the pid (5 digits), a per-process session counter (5 digits)
and "00". id_trans: id_sess with the last two characters replaced by a base-62 transaction
number that starts at a random value per session."""
import os
import random
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def time62(now=None):
    t = time.localtime(now)
    fields = (t.tm_year - 1900, t.tm_mon - 1, t.tm_mday - 1, t.tm_hour, t.tm_min, t.tm_sec)
    return "".join(BASE62[value % 62] for value in fields)


# This process's id, kept current across fork (workers are forked): a getpid per session
# id or log line would cost a system call each.
_process_id = os.getpid()


def _forked():
    global _process_id
    _process_id = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id():
    return _process_id


class SessionIds:
    def __init__(self):
        self.counter = 0
        self._second = None       # time62 of the last session's second (a busy worker
        self._stamp = ""          # starts many per second; time62 costs more than the rest)

    def next_session(self):
        self.counter = self.counter % 65535 + 1
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = time62(second)
        return "%s%05d%05d00" % (self._stamp, _process_id % 100000, self.counter)


class TransactionIds:
    """Per session: transaction numbers 1..3843 in base 62, starting at a random point."""

    def __init__(self, id_sess):
        self.prefix = id_sess[:-2]
        self.number = random.randrange(3844)

    def next(self):
        self.number = self.number % 3843 + 1
        return self.prefix + BASE62[self.number // 62] + BASE62[self.number % 62]
