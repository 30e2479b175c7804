"""util.date_to_time: an RFC 2822 / ctime / ISO 8601 date to seconds since the epoch.

The original's parser (libsnert convertDate, shared/spec/helpers.md §5), with its bugs fixed
where they lost or misread valid dates:
* an ISO 8601 numeric zone (`+0200`, `+02:00`, `+02`) is applied; the original ate it as a
  "fraction" and returned the local time as UTC, or failed on `+02:00`;
* 29 February is a valid day in leap years in every format (the original rejected it in
  the RFC 2822 and ctime forms);
* the calendar is the Gregorian one (the original counted 2100 as a leap year, so every
  date from 1 March 2100 on was a day late);
* a date may end right after the year, or after `HH:MM`, when only white space or comments
  follow (the original failed on `21 Sep 2003 ` and `21 Sep 2003 22:04`).
Everything else is the original's: the accepted forms and spellings, the zone table, the
year rules (0-69 -> 20xx, 70-999 -> 1900 + year, before 1970 fails) and what the length
counts (leading and trailing white space and comments, not the text after the zone).
"""
import datetime

_SPACE = b" \t\n\v\f\r"
_DIGITS = b"0123456789"
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()

_WEEKDAYS = {form.encode() for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
             for form in (day, day.lower(), day.upper())}  # exactly these spellings
_MONTHS = {}
for _number, _name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                 "Sep", "Oct", "Nov", "Dec"), 1):
    for _form in (_name, _name.lower(), _name.upper()):
        _MONTHS[_form.encode()] = _number

# The original's zone names with their offsets as +-HHMM, in its table order: matching is a
# case-insensitive prefix compare and the first hit wins (so EAST is always +1000, and
# EST5EDT is EST). Data: shared/spec/vectors/date_zones.json.
_ZONES = [(name.encode(), hhmm) for name, hhmm in (
    ("NZDT", 1300), ("IDLE", 1200), ("NZST", 1200), ("NZT", 1200), ("AESST", 1100),
    ("ACSST", 1030), ("CADT", 1030), ("SADT", 1030), ("AEST", 1000), ("EAST", 1000),
    ("GST", 1000), ("LIGT", 1000), ("SAST", 930), ("CAST", 930), ("AWSST", 900), ("JST", 900),
    ("KST", 900), ("MHT", 900), ("WDT", 900), ("MT", 830), ("AWST", 800), ("CCT", 800),
    ("WADT", 800), ("WST", 800), ("JT", 730), ("ALMST", 700), ("WAST", 700), ("CXT", 700),
    ("MMT", 630), ("ALMT", 600), ("MAWT", 600), ("IOT", 500), ("MVT", 500), ("TFT", 500),
    ("AFT", 430), ("EAST", 400), ("MUT", 400), ("RET", 400), ("SCT", 400), ("IRT", 330),
    ("IT", 330), ("EAT", 300), ("BT", 300), ("EETDST", 300), ("HMT", 300), ("BDST", 200),
    ("CEST", 200), ("CETDST", 200), ("EET", 200), ("FWT", 200), ("IST", 200), ("MEST", 200),
    ("METDST", 200), ("SST", 200), ("BST", 100), ("CET", 100), ("DNT", 100), ("FST", 100),
    ("MET", 100), ("MEWT", 100), ("MEZ", 100), ("NOR", 100), ("SET", 100), ("SWT", 100),
    ("WETDST", 100), ("GMT", 0), ("UTC", 0), ("UT", 0), ("ZULU", 0), ("WET", 0), ("WAT", -100),
    ("FNST", -100), ("FNT", -200), ("BRST", -200), ("NDT", -230), ("ADT", -300),
    ("AWT", -300), ("BRT", -300), ("NFT", -330), ("NST", -330), ("AST", -400),
    ("ACST", -400), ("EDT", -400), ("ACT", -500), ("CDT", -500), ("EST", -500),
    ("CST", -600), ("MDT", -600), ("MST", -700), ("PDT", -700), ("AKDT", -800),
    ("PST", -800), ("YDT", -800), ("AKST", -900), ("HDT", -900), ("YST", -900),
    ("MART", -930), ("AHST", -1000), ("HST", -1000), ("CAT", -1000), ("NT", -1100),
    ("IDLW", -1200), ("A", 100), ("B", 200), ("C", 300), ("D", 400), ("E", 500), ("F", 600),
    ("G", 700), ("H", 800), ("I", 900), ("K", 1000), ("L", 1100), ("M", 1200), ("N", -100),
    ("O", -200), ("P", -300), ("Q", -400), ("R", -500), ("S", -600), ("T", -700), ("U", -800),
    ("V", -900), ("W", -1000), ("X", -1100), ("Y", -1200), ("Z", 0))]


class _Fail(Exception):
    """The text is not a date."""


def date_to_time(text):
    """-> (length parsed, seconds since the epoch), or None when `text` is not a date."""
    if not text:
        return None
    try:
        return _Parser(text).parse()
    except _Fail:
        return None


def hhmm_seconds(hhmm):
    """+-HHMM as seconds east of UTC (minutes unchecked: +0199 is 2h39m, as in the original)."""
    sign = -1 if hhmm < 0 else 1
    hours, minutes = divmod(abs(hhmm), 100)
    return sign * (hours * 3600 + minutes * 60)


def epoch_seconds(year, month, day, hour, minute, second, zone_seconds):
    days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    return days * 86400 + hour * 3600 + minute * 60 + second - zone_seconds


def _full_year(year):
    if 0 <= year <= 69:
        year += 2000
    elif 70 <= year <= 999:
        year += 1900
    if not 1970 <= year <= 9999:
        raise _Fail
    return year


def _check_day(year, month, day):
    if not 1 <= month <= 12:
        raise _Fail
    try:
        datetime.date(year, month, day)
    except (ValueError, OverflowError):
        raise _Fail from None


class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    # -- low level ------------------------------------------------------------------------
    def peek(self, count=1):
        return self.text[self.pos:self.pos + count]

    def at_end(self):
        return self.pos >= len(self.text)

    def skip_cfws(self):
        """White space and (non-nested) comments."""
        while True:
            while self.peek() and self.peek() in _SPACE:
                self.pos += 1
            if self.peek() != b"(":
                return
            close = self.text.find(b")", self.pos + 1)
            if close < 0:
                return
            self.pos = close + 1

    def number(self):
        """C strtol: white space, a sign, then at least one digit."""
        pos = self.pos
        while self.text[pos:pos + 1] and self.text[pos:pos + 1] in _SPACE:
            pos += 1
        start = pos
        if self.text[pos:pos + 1] in (b"+", b"-"):
            pos += 1
        digits = pos
        while self.text[pos:pos + 1] and self.text[pos:pos + 1] in _DIGITS:
            pos += 1
        if pos == digits:
            raise _Fail
        self.pos = pos
        return int(self.text[start:pos])

    def digits(self, count):
        """Exactly `count` digits (the ISO 8601 fields)."""
        field = self.peek(count)
        if len(field) != count or not field.isdigit():
            raise _Fail
        self.pos += count
        return int(field)

    def optional(self, byte):
        if self.peek() == byte:
            self.pos += 1
            return True
        return False

    # -- the forms ------------------------------------------------------------------------
    def parse(self):
        self.skip_cfws()
        if self.peek(3) in _WEEKDAYS:
            self.pos += 3
            self.optional(b",")
        if self._looks_iso():  # ISO 8601 directly after the weekday, no space skipped
            return self.iso()
        self.skip_cfws()
        if self.peek(3) in _MONTHS:
            return self.ctime()
        return self.rfc2822()

    def _looks_iso(self):
        head = self.peek(5)
        return len(head) == 5 and head[:4].isdigit() and head[4:] in b"-0123456789"

    def iso(self):
        """YYYY[-]MM[-]DD[THH[:]MM[[:]SS[(.|,)fraction]]] [zone]; hours, minutes and seconds
        are not range-checked (as in the original)."""
        year = _full_year(self.digits(4))
        dash = self.optional(b"-")
        month = self.digits(2)
        if dash:
            self.optional(b"-")
        day = self.digits(2)
        _check_day(year, month, day)
        hour = minute = second = 0
        if self.optional(b"T"):
            hour = self.digits(2)
            self.optional(b":")
            minute = self.digits(2)
            colon = self.optional(b":")
            if colon or self.peek().isdigit():
                second = self.digits(2)
                if self.peek() in (b".", b",") and self.text[self.pos + 1:self.pos + 2].isdigit():
                    self.pos += 1
                    while self.peek().isdigit():
                        self.pos += 1
        zone = self.iso_zone()
        self.skip_cfws()
        if zone is None:
            if not self.at_end():  # neither a zone nor the end: not an ISO date
                raise _Fail
            zone = 0
        return self.pos, epoch_seconds(year, month, day, hour, minute, second, zone)

    def iso_zone(self):
        """Z, or +-HH[[:]MM] (optionally after white space) -> seconds east, or None."""
        saved = self.pos
        while self.peek() and self.peek() in _SPACE:
            self.pos += 1
        if self.peek() in (b"Z", b"z"):
            self.pos += 1
            return 0
        if self.peek() in (b"+", b"-"):
            sign = -1 if self.peek() == b"-" else 1
            self.pos += 1
            start = self.pos
            while self.peek().isdigit() and self.pos - start < 2:
                self.pos += 1
            if self.pos > start:
                hours, minutes = int(self.text[start:self.pos]), 0
                if self.peek() == b":" and self.text[self.pos + 1:self.pos + 3].isdigit() \
                        or self.peek(2).isdigit() and len(self.peek(2)) == 2:
                    self.optional(b":")
                    minutes = self.digits(2)
                if hours <= 23 and minutes <= 59:
                    return sign * (hours * 3600 + minutes * 60)
        self.pos = saved
        return None

    def month(self):
        self.skip_cfws()
        month = _MONTHS.get(self.peek(3))
        if month is None:
            raise _Fail
        self.pos += 3
        return month

    def time(self):
        """HH:MM[:SS]; hour and minutes joined by `:` with no space before it."""
        self.skip_cfws()
        hour = self.number()
        if not self.optional(b":"):
            raise _Fail
        minute = self.number()
        second = 0
        if self.optional(b":"):
            second = self.number()
        elif not (self.at_end() or self.peek() in _SPACE or self.peek() == b"("):
            raise _Fail
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 60):
            raise _Fail
        return hour, minute, second

    def zone(self):
        """After the time: a numeric +-HHMM (-9959..9959), a named zone, or none (UTC)."""
        self.skip_cfws()
        byte = self.peek()
        if byte and byte in b"+-0123456789":
            hhmm = self.number()
            if not -9959 <= hhmm <= 9959:
                raise _Fail
            return hhmm_seconds(hhmm)
        if byte.isalpha():
            rest = self.text[self.pos:self.pos + 6].upper()
            for name, hhmm in _ZONES:
                if rest.startswith(name):
                    after = self.text[self.pos + len(name):self.pos + len(name) + 1]
                    if after.isalpha():  # MESZ, XYZ ...: an unknown zone fails the date
                        raise _Fail
                    self.pos += len(name)
                    return hhmm_seconds(hhmm)
        return 0  # no zone, or an unknown one that matches no entry: UTC, length stops here

    def finish(self, year, month, day, clock):
        _check_day(year, month, day)
        zone = self.zone() if clock is not None else 0
        self.skip_cfws()
        return self.pos, epoch_seconds(year, month, day, *(clock or (0, 0, 0)), zone)

    def ctime(self):
        """mmm dd HH:MM[:SS] yyyy [zone]"""
        month = self.month()
        self.skip_cfws()
        day = self.number()
        clock = self.time()
        self.skip_cfws()
        year = _full_year(self.number())
        return self.finish(year, month, day, clock)

    def rfc2822(self):
        """dd mmm yyyy [HH:MM[:SS] [zone]]"""
        day = self.number()
        month = self.month()
        self.skip_cfws()
        year = _full_year(self.number())
        saved = self.pos
        self.skip_cfws()
        if self.at_end():
            return self.finish(year, month, day, None)
        self.pos = saved
        return self.finish(year, month, day, self.time())
