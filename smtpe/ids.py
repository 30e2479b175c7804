"""Session and transaction identifiers in the original's format.

id_sess: six base-62 "time62" digits of the local time (years since 1900 mod 62, month,
day-1, hour, minute, second), the pid (5 digits), a per-process session counter (5 digits)
and "00". id_trans: id_sess with the last two characters replaced by a base-62 transaction
number that starts at a random value per session."""
import random
import time

from .stamps import SecondStamp, process_id

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def time62(now=None):
    t = time.localtime(now)
    fields = (t.tm_year - 1900, t.tm_mon - 1, t.tm_mday - 1, t.tm_hour, t.tm_min, t.tm_sec)
    return "".join(BASE62[value % 62] for value in fields)


class SessionIds:
    def __init__(self):
        self.counter = 0
        self._time62 = SecondStamp(time62)   # (a busy worker starts many sessions a second)

    def next_session(self):
        self.counter = self.counter % 65535 + 1
        return "%s%05d%05d00" % (self._time62.now(), process_id() % 100000, self.counter)


class TransactionIds:
    """Per session: transaction numbers 1..3843 in base 62, starting at a random point."""

    def __init__(self, id_sess):
        self.prefix = id_sess[:-2]
        self.number = random.randrange(3844)

    def next(self):
        self.number = self.number % 3843 + 1
        return self.prefix + BASE62[self.number // 62] + BASE62[self.number % 62]
