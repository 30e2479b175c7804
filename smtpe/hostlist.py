"""Host-list strings as the original accepted them: `name`, `name:port`, `[name]:port`, IPv4,
`IPv4:port`, IPv6, `[IPv6]:port`, `IPv6,port`, or a unix socket path starting with `/`."""
import ipaddress
import re

_SPLIT = re.compile(r"[;,\s]+")


def split_hosts(value):
    """A host list option (`a;b, c d`) or a Lua array already turned into a list -> [str]."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return [h for h in _SPLIT.split(value) if h]
    return [h.decode("utf-8", "replace") if isinstance(h, bytes) else str(h) for h in value if h]


def parse_host(entry, default_port):
    """-> (host, port); port is None for a unix socket path. Raises ValueError on nonsense."""
    entry = entry.strip()
    if entry.startswith("/"):
        return entry, None
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise ValueError("unbalanced [ in host %r" % entry)
        host, rest = entry[1:close], entry[close + 1:]
        port = _port(rest[1:], entry) if rest[:1] in (":", ",") and rest[1:] else default_port
        return host, port
    if entry.count(":") > 1:  # bare IPv6, perhaps with a `,port` suffix
        host, _, port = entry.partition(",")
        ipaddress.IPv6Address(host)
        return host, _port(port, entry) if port else default_port
    host, sep, port = entry.replace(",", ":").partition(":")
    return host, _port(port, entry) if sep else default_port


def _port(text, entry):
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("bad port in host %r" % entry)
    return int(text)


def format_host(host, port):
    if port is None:
        return host
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
