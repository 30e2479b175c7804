"""A deliberately faulty TCP peer on 127.0.0.1, for the failures a real clamd/spamd/HTTP
server will not produce on demand. Runs in a thread; each connection gets the same act:

silent    reads whatever comes and never answers
garbage   reads `read_bytes`, answers `reply`, closes
drop      reads `read_bytes`, then closes (RST: unread data left behind)
slow      reads `read_bytes`, waits `delay` seconds, answers `reply`, closes
stall     never reads at all (a small receive buffer), so the client's writes back up
"""
import socket
import struct
import threading
import time

from .net import ThreadedListener

MODES = ("silent", "garbage", "drop", "slow", "stall")


class FaultPeer(ThreadedListener):
    def __init__(self, mode, reply=b"", read_bytes=1, delay=0.0):
        assert mode in MODES
        self.mode = mode
        self.reply = reply
        self.read_bytes = read_bytes
        self.delay = delay
        self.connections = 0
        self.received = bytearray()
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode == "stall":
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._threads = []

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self._spawn(self._accept_loop)
        return self

    def _read(self, conn, count):
        """Read until `count` bytes came (or EOF, or stop)."""
        got = 0
        conn.settimeout(0.1)
        while got < count and not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += data
            got += len(data)

    def _connection(self, conn, number):
        with conn:
            mode = self.mode
            if mode == "stall":
                self._stop.wait()
                return
            if mode == "silent":
                self._read(conn, float("inf"))
                return
            self._read(conn, self.read_bytes)
            if mode == "drop":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if mode == "slow":
                deadline = time.monotonic() + self.delay
                while time.monotonic() < deadline and not self._stop.is_set():
                    time.sleep(0.02)
            try:
                conn.sendall(self.reply)
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)
