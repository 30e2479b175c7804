"""HTTP/1.0 client for service.http.request (original-behaviour.md §7.4). Plain `http://`
only (no TLS). One request per connection (`Connection: close`), reply read to EOF; redirects
are reported, not followed.
"""
import calendar
import email.utils
import re
from urllib.parse import urlsplit

from . import Job
from ..hostlist import format_host

DEFAULT_TIMEOUT = 30.0
REPLY_LIMIT = 8 << 20  # bytes of reply kept (headers and content)
METHODS = (b"GET", b"HEAD", b"POST")

_STATUS = re.compile(rb"HTTP/[0-9]+\.[0-9]+[ \t]+([0-9]{3})(?:[ \t].*)?$")


class Url:
    """The parts of an `http://` URL a request needs; raises ValueError for anything else."""

    def __init__(self, url):
        self.url = url
        text = url.decode("latin-1")
        parts = urlsplit(text)
        if parts.scheme.lower() != "http":
            raise ValueError("only http:// URLs are supported: %s" % text)
        if not parts.hostname or any(c in text for c in "\r\n \t"):
            raise ValueError("bad URL: %s" % text)
        self.host = parts.hostname
        port = parts.port  # raises ValueError on a bad port
        self.address = format_host(self.host, port or 80)
        self.host_header = parts.netloc.rpartition("@")[2].encode("latin-1")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        self.target = target.encode("latin-1")


def date_to_seconds(value):
    """RFC 2822 (or RFC 850) or ctime() date -> epoch seconds; no zone means GMT.
    Raises ValueError when unreadable."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    parsed = email.utils.parsedate_tz(value.strip()) if value else None
    if parsed is None:
        raise ValueError("not a date: %r" % value)
    return calendar.timegm(parsed[:6] + (0, 1, 0)) - (parsed[9] or 0)


def http_date(seconds):
    return email.utils.formatdate(seconds, usegmt=True).encode()


class HttpJob(Job):
    service_name = "http"
    default_port = 80

    def __init__(self, loop, url, on_done, method=b"HEAD", modified_since=None, post=None,
                 timeout=DEFAULT_TIMEOUT, ident=None):
        """`url` bytes; `modified_since` epoch seconds or None; `post` request body or None."""
        self.target = Url(url)
        if method not in METHODS:
            raise ValueError("unsupported HTTP method %r" % method)
        super().__init__(loop, [self.target.address], timeout, on_done)
        self.method = method
        self.modified_since = modified_since
        self.post = post
        self.result.update(url=url, id=ident, service_host=self.target.host)

    def request(self):
        lines = [b"%s %s HTTP/1.0" % (self.method, self.target.target),
                 b"Host: " + self.target.host_header,
                 b"User-Agent: smtpe",
                 b"Connection: close"]
        if self.modified_since:
            lines.append(b"If-Modified-Since: " + http_date(self.modified_since))
        body = self.post if self.post is not None else b""
        if self.method == b"POST" or body:
            lines.append(b"Content-Type: application/x-www-form-urlencoded")
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def exchange(self, stream):
        self.result["service_host"] = self.target.host  # the URL's host, not host:port
        stream.read_until_eof(self.guard(self._replied), self.timeout, REPLY_LIMIT)
        stream.write(self.request())

    def _replied(self, data):
        if data is None:
            self.fail(self.read_failed())
            return
        end, blank = _header_end(data)
        header_block = data[:end]
        status_line = header_block.split(b"\n", 1)[0].rstrip(b"\r")
        status = _STATUS.match(status_line)
        if status is None:
            self.fail("not an HTTP reply: %r" % data[:80])
            return
        headers = _header_fields(header_block)
        content = data[end + blank:]
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            content = _unchunk(content)
        fields = {"rcode": int(status.group(1)), "headers": header_block, "content": content,
                  "content_type": headers.get(b"content-type"),
                  "content_encoding": headers.get(b"content-encoding")}
        for name in ("date", "expires", "last_modified"):
            value = headers.get(name.replace("_", "-").encode())
            try:
                fields[name] = date_to_seconds(value) if value else None
            except (ValueError, OverflowError):
                fields[name] = None
        self.finish(**fields)


def _header_end(data):
    """-> (offset where the blank line starts, its length); a reply cut short is all header."""
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 2, 2
    if lf >= 0:
        return lf + 1, 1
    return len(data), 0


def _header_fields(block):
    """Header block -> {lower-case name: value} (folded lines joined, first occurrence wins)."""
    fields = {}
    name = None
    for line in block.replace(b"\r\n", b"\n").split(b"\n")[1:]:
        if line[:1] in (b" ", b"\t") and name is not None:
            fields[name] += b" " + line.strip()
            continue
        key, colon, value = line.partition(b":")
        if not colon:
            name = None
            continue
        name = key.strip().lower()
        if name in fields:
            name = None  # keep the first occurrence; ignore this one's continuations
            continue
        fields[name] = value.strip()
    return fields


def _unchunk(data):
    """Decode a chunked body (an HTTP/1.1 server may send one even to HTTP/1.0)."""
    out = bytearray()
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            break
        try:
            size = int(data[position:end].split(b";")[0].strip(), 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[end + 1:end + 1 + size]
        after = data.find(b"\n", end + 1 + size)  # the line end closing this chunk
        if after < 0:
            break
        position = after + 1
    return bytes(out)
