"""A tiny programmable UDP "DNS server" for the faults a real server will not produce on
demand: it never answers, answers garbage, answers every query with one rcode, or (mode
"slow") relays to a real server but answers names containing `slow` only `delay` seconds
after the question first came (a recursive server resolving them); with hold=True those
answers wait until release(), so a test orders events without racing a delay.
Runs in a thread of the test process on a high 127.0.0.1 port.

    with FakeDns("silent") as fake:
        options["dns-servers"] = fake.address
    with FakeDns("slow", upstream=nsd.port, delay=1.0) as relay: ...
"""
import heapq
import os
import socket
import struct
import threading
import time

MODES = ("silent", "garbage", "servfail", "refused", "wrong-id", "slow")
SLOW_MARK = b"slow"
_RCODES = {"servfail": 2, "refused": 5}


class FakeDns:
    def __init__(self, mode="silent", upstream=None, delay=1.0, hold=False):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % (MODES,))
        if mode == "slow" and upstream is None:
            raise ValueError("mode slow needs the upstream server's port")
        self.mode = mode
        self.upstream = upstream
        self.delay = delay
        self._held = []          # (due, sequence, reply, peer): answers held back, a heap
        self._first_seen = {}    # question -> when it first came
        self.received = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stopping = threading.Event()
        self._released = threading.Event()   # hold=True: held answers wait for release()
        if not hold:
            self._released.set()
        self._thread = threading.Thread(target=self._serve, name="fakedns", daemon=True)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self):
        sequence = 0
        while not self._stopping.is_set():
            self._release_due()
            try:
                query, peer = self._sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received += 1
            reply = self._reply(query)
            if reply is None:
                continue
            question = query[12:_question_end(query)].lower()
            if self.mode == "slow" and SLOW_MARK in question:
                # like a recursive server: every copy of a question (retransmissions too) is
                # answered when the first one has been "resolved", `delay` after it came
                now = time.monotonic()
                first = self._first_seen.get(question)
                if first is None or now - first > 2 * self.delay:  # long done: a new lookup
                    first = self._first_seen[question] = now
                due = first + self.delay
                sequence += 1
                heapq.heappush(self._held, (due, sequence, reply, peer))
            else:
                self._send(reply, peer)

    def release(self):
        """hold=True: let the held answers go (each when it is due)."""
        self._released.set()

    def held_questions(self):
        """The distinct questions (name, type, class) received and not yet answered."""
        return {reply[12:_question_end(reply)].lower() for _, _, reply, _ in list(self._held)}

    def _release_due(self):
        if not self._released.is_set():
            self._sock.settimeout(0.05)
            return
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            _, _, reply, peer = heapq.heappop(self._held)
            self._send(reply, peer)
        # wake up in time for the next held answer
        self._sock.settimeout(min(0.05, max(0.001, self._held[0][0] - now)) if self._held else 0.05)

    def _send(self, reply, peer):
        try:
            self._sock.sendto(reply, peer)
        except OSError:
            pass

    def _relay(self, query):
        """The upstream's answer to `query` (None if it gives none within a second)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            try:
                sock.sendto(query, ("127.0.0.1", self.upstream))
                return sock.recv(65535)
            except OSError:
                return None

    def _reply(self, query):
        if self.mode == "silent" or len(query) < 12:
            return None
        if self.mode == "slow":
            return self._relay(query)
        if self.mode == "garbage":
            # the query's ID, then noise: passes the ID check, fails any parser
            return query[:2] + os.urandom(40)
        ident, flags = struct.unpack(">HH", query[:4])
        question_end = _question_end(query)
        question = query[12:question_end]
        if self.mode == "wrong-id":
            ident ^= 0xFFFF
            rcode = 0
        else:
            rcode = _RCODES[self.mode]
        header = struct.pack(">HHHHHH", ident, 0x8000 | (flags & 0x0100) | 0x0080 | rcode, 1, 0, 0, 0)
        return header + question


def _question_end(message):
    """Offset just past the first question (uncompressed name + type + class)."""
    offset = 12
    while offset < len(message) and message[offset]:
        offset += message[offset] + 1
    return offset + 5
