"""Lua `util.*`: cpucount, getloadavg, mkpath, date_to_time."""
import os

from . import string_arg


def install(api):
    table = api.namespace("util")

    def cpucount():
        return os.cpu_count() or 1

    def getloadavg():
        try:
            one, five, fifteen = os.getloadavg()
        except OSError:
            return None
        result = api.table(one, five, fifteen)
        result[b"1m_avg"], result[b"5m_avg"], result[b"15m_avg"] = one, five, fifteen
        return result

    def mkpath(path=None):
        try:
            os.makedirs(os.fsdecode(string_arg(path, b".")), exist_ok=True)
            return True
        except OSError:
            return False

    table[b"cpucount"] = cpucount
    table[b"getloadavg"] = getloadavg
    table[b"mkpath"] = mkpath
    try:
        from ..datetime_parse import date_to_time   # the RFC 2822 date parser (content toolkit)
    except ImportError:
        return
    table[b"date_to_time"] = lambda text=None: date_to_time(string_arg(text, b""))
