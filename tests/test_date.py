"""smtpe.datetime_parse.date_to_time (util.date_to_time): the original's date.json and
date_zones.json vectors, the cases where smtpe deliberately does better, and property tests
against Python's own formatting of dates."""
import calendar
import datetime
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpe.datetime_parse import date_to_time
from tests.reference.vectors import cases, raw


def utc(text):
    return calendar.timegm(datetime.datetime.fromisoformat(text.rstrip("Z")).timetuple())


ISO_ZONE = "the original ate an ISO numeric zone as a fraction of a second and returned local time as UTC"
LEAP_DAY = "the original rejected 29 February in the RFC 2822 and ctime forms"
GREGORIAN = "the original counted 2100 as a leap year, so dates from March 2100 on were a day late"
DATE_ONLY = "the original failed when white space followed the year, or when the string ended after HH:MM"
# input -> (length, UTC time) smtpe returns, and why that differs from the vector.
DIFFERENCES = {
    "21 Sep 2003 ": (12, "2003-09-21T00:00:00", DATE_ONLY),
    "21 Sep 2003 22:04": (17, "2003-09-21T22:04:00", DATE_ONLY),
    "Thu, 29 Feb 2004 12:00:00 +0000": (31, "2004-02-29T12:00:00", LEAP_DAY),
    "Sun, 29 Feb 2004 12:00:00 +0000": (31, "2004-02-29T12:00:00", LEAP_DAY),  # weekday unchecked
    "Feb 29 12:00:00 2004": (20, "2004-02-29T12:00:00", LEAP_DAY),
    "1 Jan 999 00:00:00 +0000": (24, "2899-01-01T00:00:00", GREGORIAN),
    "0999-01-01": (10, "2899-01-01T00:00:00", GREGORIAN),
    "1 Mar 2101 00:00:00 +0000": (25, "2101-03-01T00:00:00", GREGORIAN),
    "2003-09-22T20:02:33+0200": (24, "2003-09-22T18:02:33", ISO_ZONE),
    "2003-09-22T20:02:33+02:00": (25, "2003-09-22T18:02:33", ISO_ZONE + "; `+02:00` even failed"),
    "2003-09-22T20:02:33+02": (22, "2003-09-22T18:02:33", ISO_ZONE),
    "2003-09-22T20:02:33+2": (21, "2003-09-22T18:02:33", ISO_ZONE),
    "20030922T200233+02": (18, "2003-09-22T18:02:33", ISO_ZONE),
    "2003-09-22T20:02:33 +0200": (25, "2003-09-22T18:02:33", ISO_ZONE),
    "2003-09-22T20:02+0200": (21, "2003-09-22T18:02:00", ISO_ZONE),
    # Same instant as the original, but the length now covers the whole zone `-0130`
    "2003-09-22T20:02:33,5-0130": (26, "2003-09-22T21:32:33", ISO_ZONE),
}


@pytest.mark.parametrize("vector", cases("date.json"))
def test_vector(vector):
    result = date_to_time(raw(vector["input"]))
    difference = DIFFERENCES.get(vector["input"])
    if difference is not None:
        length, when, why = difference
        assert result == (length, utc(when)), why
        original = (vector["expected_length"], vector["expected_seconds"]) if vector["expected_length"] else None
        assert result != original
    elif vector["expected_length"] == 0:
        assert result is None
    else:
        assert result == (vector["expected_length"], vector["expected_seconds"])
        assert vector["expected_seconds"] == utc(vector["utc"])


@pytest.mark.parametrize("zone", cases("date_zones.json", "zones"))
def test_named_zones_in_table_order(zone):
    """`c_epoch...` already shows the shadowed duplicate (the second EAST is +1000)."""
    text = "1 Jan 2000 00:00:00 " + zone["zone"]
    assert date_to_time(text.encode()) == (len(text), zone["c_epoch_for_1_Jan_2000_00:00:00"])
    assert date_to_time(text.lower().encode()) == (len(text), zone["c_epoch_for_1_Jan_2000_00:00:00"])


def test_unknown_zones():
    assert date_to_time(b"21 Sep 2003 22:04:27 MESZ") is None  # M + a letter: the date fails
    assert date_to_time(b"21 Sep 2003 22:04:27 jkl") == (21, utc("2003-09-21T22:04:27"))


# -- properties: what Python writes, smtpe reads ---------------------------------------------
instants = st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(9998, 12, 30))
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))


@given(instants, offsets)
def test_rfc2822_dates(moment, zone):
    moment = moment.replace(microsecond=0, tzinfo=zone)
    text = email.utils.format_datetime(moment)
    assert date_to_time(text.encode()) == (len(text), int(moment.timestamp()))
    with_comment = text + " (comment) trailing"
    assert date_to_time(with_comment.encode()) == (len(text) + 11, int(moment.timestamp()))


@given(instants, offsets, st.sampled_from(["seconds", "milliseconds", "microseconds"]))
def test_iso8601_dates(moment, zone, timespec):
    moment = moment.replace(tzinfo=zone)
    text = moment.isoformat(timespec=timespec)
    assert date_to_time(text.encode()) == (len(text), int(moment.replace(microsecond=0).timestamp()))
    basic = moment.strftime("%Y%m%dT%H%M%S%z")
    assert date_to_time(basic.encode()) == (len(basic), int(moment.replace(microsecond=0).timestamp()))


@given(instants)
def test_ctime_dates(moment):
    moment = moment.replace(microsecond=0)
    text = moment.ctime()
    seconds = calendar.timegm(moment.timetuple())
    assert date_to_time(text.encode()) == (len(text), seconds)
    assert date_to_time((text + " +0100").encode()) == (len(text) + 6, seconds - 3600)


@given(st.binary(max_size=40))
def test_never_raises(data):
    result = date_to_time(data)
    assert result is None or 0 < result[0] <= len(data)
