"""Lua `util.*`: cpucount, getloadavg, mkpath, date_to_time.

    util.cpucount()        -> number of CPUs
    util.getloadavg()      -> {a1, a5, a15, ["1m_avg"]=a1, ["5m_avg"]=a5, ["15m_avg"]=a15},
                              nil when the system cannot tell
    util.mkpath(path=".")  -> true when `path` is (now) a directory, like mkdir -p
    util.date_to_time(s)   -> length parsed, seconds since the epoch; or 0 alone
                              (smtpe.datetime_parse, which lists its fixes of the original)

mkpath takes the path as the file system does. The original split it with its text.split
rules, so a backslash was an escape (`w\\b` made a directory named w + BS) and quotes were
removed; here both are ordinary characters.
"""
import os

from ..datetime_parse import date_to_time as parse_date
from . import string_arg


def cpucount():
    return os.cpu_count() or 1


def date_to_time(text=None):
    parsed = parse_date(string_arg(text, b""))
    return 0 if parsed is None else parsed  # (length, seconds): two Lua values


def mkpath(path=None):
    path = string_arg(path, b".")
    if not path:
        return True  # as the original: nothing to create
    try:
        os.makedirs(os.fsdecode(path), exist_ok=True)
    except (OSError, ValueError):  # a file in the way, no permission, a NUL byte ...
        return False
    return True


def install(api):
    table = api.namespace("util")

    def getloadavg():
        try:
            one, five, fifteen = os.getloadavg()
        except OSError:
            return None
        result = api.table(one, five, fifteen)
        result[b"1m_avg"], result[b"5m_avg"], result[b"15m_avg"] = one, five, fifteen
        return result

    table[b"cpucount"] = cpucount
    table[b"getloadavg"] = getloadavg
    table[b"mkpath"] = mkpath
    table[b"date_to_time"] = date_to_time
