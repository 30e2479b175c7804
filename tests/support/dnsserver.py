"""A real authoritative DNS server (Debian `nsd`) for tests: zones written by the test into a
tmp folder, UDP and TCP on a high 127.0.0.1 port, no privileges dropped, no system service,
stopped by PID.

    with DnsServer(tmp_path, standard_zones()) as server:
        options["dns-servers"] = server.address      # "127.0.0.1:PORT"
"""
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from .net import ServerProcess

START_TIMEOUT = 30.0


def nsd_binary():
    return shutil.which("nsd") or ("/usr/sbin/nsd" if os.access("/usr/sbin/nsd", os.X_OK) else None)


def require_nsd():
    if nsd_binary() is None:
        pytest.skip("nsd is not installed (Debian package nsd, see .ci/apt-packages.txt)")


# A TXT record longer than a UDP answer of 1232 bytes: only TCP delivers it whole.
LONG_TXT_CHUNKS = ['"%s"' % (chr(ord("a") + i % 26) * 200) for i in range(8)]

SOA = "@ IN SOA ns.test. hostmaster.test. 2024010101 3600 600 86400 60\n@ IN NS ns.test.\n"


def standard_zones():
    """The zones the DNS tests share: every record type the API decodes, glue, a CNAME
    inside and one out of the zone, a DNSBL, reverse zones for IPv4 and IPv6. Names that do
    not exist give NXDOMAIN; existing names asked for a type they lack give NODATA."""
    return {
        "test.": SOA + "\n".join([
            "ns IN A 127.0.0.1",
            "www IN A 192.0.2.10",
            "www IN AAAA 2001:db8::10",
            "www IN TXT \"web\" \"server\"",
            # out of preference order on purpose: the API sorts them
            "@ IN MX 20 mx2.test.",
            "@ IN MX 10 mx1.test.",
            "@ IN MX 30 mx3.test.",
            "mx1 IN A 192.0.2.21",
            "mx2 IN A 192.0.2.22",
            "mx3 IN A 192.0.2.23",
            "alias IN CNAME www.test.",
            "far IN CNAME host.other.example.",
            "d IN DNAME other.example.",
            "n IN TYPE10 \\# 3 010203",
            "h IN HINFO \"cpu\" \"os\"",
            "mi IN MINFO mail.test. errors.test.",
            "MiXeD IN A 192.0.2.30",
            "many IN A 192.0.2.51",
            "many IN A 192.0.2.52",
            "long IN TXT " + " ".join(LONG_TXT_CHUNKS),
            "srv IN SRV 0 0 25 mx1.test.",
            "",
        ]),
        "other.example.": SOA + "\n".join([
            "host IN A 192.0.2.40",
            "x IN A 192.0.2.41",
            "",
        ]),
        # a domain with a real TLD, for whole SMTP sessions (the session checks TLDs)
        "example.org.": SOA + "\n".join([
            "@ IN MX 10 mx.example.org.",
            "mx IN A 192.0.2.25",
            "",
        ]),
        "dnsbl.example.": SOA + "\n".join([
            "2.0.0.127 IN A 127.0.0.2",
            "2.0.0.127 IN TXT \"listed: see http://dnsbl.example/\"",
            "",
        ]),
        "2.0.192.in-addr.arpa.": SOA + "\n".join([
            "10 IN PTR www.test.",
            "11 IN PTR Host.Example.Test.",
            "11 IN PTR second.test.",
            "12 1 IN PTR brief.test.",      # a TTL of one second (the resolver's PTR memo)
            "",
        ]),
        # 2001:db8::/32
        "8.b.d.0.1.0.0.2.ip6.arpa.": SOA + "\n".join([
            "0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR www.test.",
            "",
        ]),
    }


def _free_udp_and_tcp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (nsd binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind(("127.0.0.1", port))
                    return port
            except OSError:
                continue
    raise RuntimeError("no free port for UDP and TCP")


def soa_probe(port, zone, timeout=0.5):
    """True when the server on `port` answers the SOA of `zone` authoritatively."""
    labels = [label for label in zone.rstrip(".").split(".") if label]
    name = b"".join(bytes((len(label),)) + label.encode() for label in labels) + b"\0"
    query = struct.pack(">HHHHHH", 0x5353, 0, 1, 0, 0, 0) + name + struct.pack(">HH", 6, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            reply = sock.recv(4096)
        except OSError:
            return False
    if len(reply) < 12:
        return False
    ident, flags, _, ancount = struct.unpack(">HHHH", reply[:8])
    return ident == 0x5353 and flags & 0x000F == 0 and flags & 0x0400 and ancount >= 1


class DnsServer(ServerProcess):
    def __init__(self, folder, zones):
        self.folder = os.path.join(str(folder), "nsd")
        self.zones = dict(zones)
        self.port = None
        self.process = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _write_files(self):
        os.makedirs(self.folder, exist_ok=True)
        lines = [
            "server:",
            "  ip-address: 127.0.0.1",
            "  port: %d" % self.port,
            '  username: ""',
            '  chroot: ""',
            '  zonesdir: "%s"' % self.folder,
            '  pidfile: "%s"' % os.path.join(self.folder, "nsd.pid"),
            '  logfile: "%s"' % os.path.join(self.folder, "nsd.log"),
            '  xfrdfile: "%s"' % os.path.join(self.folder, "xfrd.state"),
            '  zonelistfile: "%s"' % os.path.join(self.folder, "zone.list"),
            '  database: ""',
            "  server-count: 1",
            "  verbosity: 1",
            "  hide-version: yes",
            "  round-robin: no",
            # no response rate limiting: the tests send hundreds of queries a second from
            # 127.0.0.1, which RRL (200/s by default) would answer with drops and truncation
            "  rrl-ratelimit: 0",
            "  rrl-whitelist-ratelimit: 0",
            "remote-control:",
            "  control-enable: no",
        ]
        for index, (origin, text) in enumerate(self.zones.items()):
            filename = "zone%d.zone" % index
            with open(os.path.join(self.folder, filename), "w") as handle:
                handle.write("$ORIGIN %s\n$TTL 300\n%s" % (origin, text))
            lines += ["zone:", '  name: "%s"' % origin, '  zonefile: "%s"' % filename]
        config = os.path.join(self.folder, "nsd.conf")
        with open(config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return config

    def start(self):
        binary = nsd_binary()
        if binary is None:
            raise FileNotFoundError("nsd is not installed (Debian package nsd)")
        self.port = _free_udp_and_tcp_port()
        config = self._write_files()
        output = open(os.path.join(self.folder, "nsd.out"), "wb")
        # -d: stay in the foreground (its children go with it on SIGTERM)
        self.process = subprocess.Popen([binary, "-d", "-c", config], stdout=output,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        output.close()
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        waiting = list(self.zones)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError("nsd exited with %s: %s" % (self.process.returncode, self.log()))
            if time.monotonic() > deadline:
                raise TimeoutError("nsd did not serve %s in time: %s" % (waiting, self.log()))
            if soa_probe(self.port, waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.05)

    def log(self):
        text = []
        for name in ("nsd.out", "nsd.log"):
            try:
                with open(os.path.join(self.folder, name), errors="replace") as handle:
                    text.append(handle.read()[-2000:])
            except OSError:
                pass
        return "\n".join(text)
