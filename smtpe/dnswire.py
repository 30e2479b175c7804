"""DNS messages on the wire (RFC 1035): building a query, reading a response.

The resolver (smtpe.dns) hands c-ares a query we built and gets back the raw response, so the
question as echoed, the rcode and all three record sections survive (pycares' typed results
keep neither rcode nor question nor the sections of a failed lookup). Names are bytes: DNS
labels are binary, and Lua strings must come back exactly as they arrived.
"""
import ipaddress
import struct

# Record types and classes this module knows by number.
TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_NULL = 1, 2, 5, 6, 10
TYPE_PTR, TYPE_HINFO, TYPE_MINFO, TYPE_MX, TYPE_TXT = 12, 13, 14, 15, 16
TYPE_AAAA, TYPE_DNAME, TYPE_OPT, TYPE_ANY = 28, 39, 41, 255
CLASS_IN = 1

FLAG_QR = 0x8000
FLAG_TC = 0x0200
FLAG_RD = 0x0100

MAX_LABEL = 63
MAX_NAME = 255           # wire length, root byte included
EDNS_UDP_SIZE = 1232     # the size the DNS flag day 2020 settled on: no IP fragmentation
MAX_POINTER_HOPS = 64    # a name needs fewer; more means a pointer loop

_HEADER = struct.Struct(">HHHHHH")
_QUESTION_TAIL = struct.Struct(">HH")
_RR_FIXED = struct.Struct(">HHIH")


class BadName(ValueError):
    """A name that cannot be sent: a label over 63 bytes, an empty label, too long."""


class Malformed(ValueError):
    """A response that does not parse."""


# -- building a query ---------------------------------------------------------------------------
def name_labels(name):
    """`name` (bytes or str) -> its labels. One leading dot is skipped and a missing root
    label is implied, as the original sent names; `.` alone is the root."""
    if isinstance(name, str):
        name = name.encode("utf-8")
    if name.startswith(b"."):
        name = name[1:]
    if name.endswith(b"."):
        name = name[:-1]
    if not name:
        return []
    labels = name.split(b".")
    if any(not label for label in labels):
        raise BadName("empty label in %r" % name)
    if any(len(label) > MAX_LABEL for label in labels):
        raise BadName("label longer than %d bytes in %r" % (MAX_LABEL, name))
    if sum(len(label) + 1 for label in labels) + 1 > MAX_NAME:
        raise BadName("name longer than %d bytes: %r" % (MAX_NAME, name))
    return labels


def render_name(labels):
    """Labels -> the text form used everywhere in the API: each label followed by a dot, so
    always a trailing dot, and the root is `.`."""
    return b"".join(label + b"." for label in labels) or b"."


def encode_name(labels):
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\0"


def build_query(name, qtype, qclass=CLASS_IN, edns=True):
    """A recursion-desired query for one question (ID 0: c-ares sets its own)."""
    labels = name_labels(name)
    additional = 1 if edns else 0
    message = _HEADER.pack(0, FLAG_RD, 1, 0, 0, additional)
    message += encode_name(labels) + _QUESTION_TAIL.pack(qtype & 0xFFFF, qclass & 0xFFFF)
    if edns:
        # OPT pseudo-record: root owner, payload size in the class field, no options
        message += b"\0" + _RR_FIXED.pack(TYPE_OPT, EDNS_UDP_SIZE, 0, 0)
    return message


# -- reading a response -------------------------------------------------------------------------
class Record:
    """One resource record. `fields` holds the type's decoded data with the API's field
    names (value, preference, mname ...), {} for a known type without such data (HINFO,
    MINFO), None for a type we do not decode."""
    __slots__ = ("name", "type", "rclass", "ttl", "rdata", "fields")

    def __init__(self, name, rtype, rclass, ttl, rdata, fields):
        self.name = name
        self.type = rtype
        self.rclass = rclass
        self.ttl = ttl
        self.rdata = rdata
        self.fields = fields

    def __repr__(self):
        return "Record(%r, %d, %d, %d, %r)" % (self.name, self.type, self.rclass, self.ttl, self.fields)


class Message:
    __slots__ = ("id", "flags", "rcode", "question", "answer", "authority", "additional")

    def __init__(self, ident, flags, question, answer, authority, additional):
        self.id = ident
        self.flags = flags
        self.rcode = flags & 0x000F
        self.question = question        # (name, type, class) of the first question, or None
        self.answer = answer
        self.authority = authority
        self.additional = additional

    @property
    def truncated(self):
        return bool(self.flags & FLAG_TC)


def parse_message(data):
    """bytes -> Message; raises Malformed."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise Malformed("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    offset = _HEADER.size
    question = None
    for _ in range(qdcount):
        labels, offset = read_name(data, offset)
        if offset + _QUESTION_TAIL.size > len(data):
            raise Malformed("question runs past the end")
        qtype, qclass = _QUESTION_TAIL.unpack_from(data, offset)
        offset += _QUESTION_TAIL.size
        if question is None:
            question = (render_name(labels), qtype, qclass)
    sections = []
    for count in (ancount, nscount, arcount):
        records = []
        for _ in range(count):
            record, offset = _read_record(data, offset)
            records.append(record)
        sections.append(records)
    return Message(ident, flags, question, *sections)


def read_name(data, offset):
    """-> (labels, offset after the name as it sits at `offset`); follows compression
    pointers, refusing loops and names over 255 bytes."""
    labels = []
    length = 1
    end = None
    hops = 0
    while True:
        if offset >= len(data):
            raise Malformed("name runs past the end")
        size = data[offset]
        if size & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise Malformed("truncated compression pointer")
            if end is None:
                end = offset + 2
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise Malformed("compression pointer loop")
            offset = ((size & 0x3F) << 8) | data[offset + 1]
            continue
        if size & 0xC0:
            raise Malformed("unknown label type 0x%02x" % size)
        offset += 1
        if size == 0:
            return labels, (end if end is not None else offset)
        if offset + size > len(data):
            raise Malformed("label runs past the end")
        length += size + 1
        if length > MAX_NAME:
            raise Malformed("name longer than 255 bytes")
        labels.append(data[offset:offset + size])
        offset += size


def _read_record(data, offset):
    labels, offset = read_name(data, offset)
    if offset + _RR_FIXED.size > len(data):
        raise Malformed("record header runs past the end")
    rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
    offset += _RR_FIXED.size
    end = offset + rdlength
    if end > len(data):
        raise Malformed("record data runs past the end")
    try:
        fields = _decode_rdata(data, offset, end, rtype)
    except (Malformed, ValueError, struct.error, IndexError):
        fields = None  # a record we cannot read is skipped, as an unknown type is
    return Record(render_name(labels), rtype, rclass, ttl, data[offset:end], fields), end


def _decode_rdata(data, start, end, rtype):
    """The API's fields for one record's data (names decompressed against the message)."""
    if rtype == TYPE_A:
        if end - start != 4:
            raise Malformed("A record of %d bytes" % (end - start))
        return {"value": b"%d.%d.%d.%d" % tuple(data[start:end])}
    if rtype == TYPE_AAAA:
        if end - start != 16:
            raise Malformed("AAAA record of %d bytes" % (end - start))
        return {"value": ipaddress.IPv6Address(data[start:end]).compressed.encode("ascii")}
    if rtype in (TYPE_NS, TYPE_CNAME, TYPE_PTR, TYPE_DNAME):
        return {"value": _name_within(data, start, end)}
    if rtype == TYPE_MX:
        (preference,) = struct.unpack_from(">H", data, start)
        if start + 2 >= end:
            raise Malformed("MX record without exchange")
        return {"preference": preference, "value": _name_within(data, start + 2, end)}
    if rtype == TYPE_TXT:
        return {"value": b"".join(_character_strings(data, start, end))}
    if rtype == TYPE_NULL:
        return {"value": data[start:end]}
    if rtype == TYPE_SOA:
        mname, offset = read_name(data, start)
        rname, offset = read_name(data, offset)
        if offset + 20 != end:
            raise Malformed("SOA record of the wrong length")
        serial, refresh, retry, expire, minimum = struct.unpack_from(">IIIII", data, offset)
        return {"mname": render_name(mname), "rname": render_name(rname), "serial": serial,
                "refresh": refresh, "retry": retry, "expire": expire, "minimum": minimum}
    if rtype in (TYPE_HINFO, TYPE_MINFO):
        return {}  # the original gave these the common fields only
    return None


def _name_within(data, start, end):
    labels, after = read_name(data, start)
    if after != end:
        raise Malformed("name does not fill its record")
    return render_name(labels)


def _character_strings(data, offset, end):
    while offset < end:
        size = data[offset]
        offset += 1
        if offset + size > end:
            raise Malformed("character-string runs past its record")
        yield data[offset:offset + size]
        offset += size
