"""Smart hosts for tests.

SmtpSink: Postfix's real smtp-sink (Debian postfix, unpacked, no daemon), dumping every
message into a folder. RecordingSink: a small SMTP server in a thread that records each
envelope and the exact bytes after DATA (un-stuffed), and can fail on demand in ways a real
server does not on request: refuse connections, hang, reject at a given step, drop the
connection in the middle of DATA."""
import glob
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field

from .debian import postfix_env, smtp_sink_path
from .net import free_port, stop_process, wait_for_port


class SmtpSink:
    def __init__(self, tmp_path, extra=()):
        self.port = free_port()
        self.dump = os.path.join(str(tmp_path), "sink-%d" % self.port)
        os.makedirs(self.dump, exist_ok=True)
        self.command = [smtp_sink_path(), "-u", "root", "-d", os.path.join(self.dump, "%H%M%S"),
                        *extra, "127.0.0.1:%d" % self.port, "256"]
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(self.command, env=postfix_env(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        return self

    def __exit__(self, *exc):
        stop_process(self.process)

    def message_count(self):
        return len([path for path in glob.glob(os.path.join(self.dump, "**", "*"), recursive=True)
                    if os.path.isfile(path)])


@dataclass
class Envelope:
    sender: bytes = b""
    recipients: list = field(default_factory=list)
    data: bytes = b""


class RecordingSink:
    """mode: accept, refuse, hang, reject-data, tempfail-rcpt, drop-in-data."""

    def __init__(self, mode="accept"):
        self.mode = mode
        self.port = free_port()
        self.messages = []
        self._stop = threading.Event()
        self._listener = None
        self._threads = []

    def __enter__(self):
        if self.mode == "refuse":
            return self  # nothing listens: connections are refused
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            thread = threading.Thread(target=self._session, args=(conn,), daemon=True)
            thread.start()

    def _session(self, conn):
        with conn:
            conn.settimeout(30)
            if self.mode == "hang":
                self._stop.wait(30)
                return
            reader = conn.makefile("rb")
            conn.sendall(b"220 sink.test ESMTP\r\n")
            envelope = Envelope()
            try:
                while True:
                    line = reader.readline()
                    if not line:
                        return
                    verb = line[:4].upper()
                    if verb in (b"EHLO", b"HELO"):
                        conn.sendall(b"250-sink.test\r\n250 8BITMIME\r\n" if verb == b"EHLO" else b"250 sink.test\r\n")
                    elif verb == b"MAIL":
                        envelope = Envelope(sender=_path(line))
                        conn.sendall(b"250 ok\r\n")
                    elif verb == b"RCPT":
                        if self.mode == "tempfail-rcpt":
                            conn.sendall(b"451 4.3.0 try later\r\n")
                            continue
                        envelope.recipients.append(_path(line))
                        conn.sendall(b"250 ok\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go\r\n")
                        data = self._read_data(reader, conn)
                        if data is None:
                            return
                        envelope.data = data
                        if self.mode == "reject-data":
                            conn.sendall(b"554 5.7.1 no thanks\r\n")
                        else:
                            self.messages.append(envelope)
                            conn.sendall(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 ok\r\n")
            except OSError:
                return

    def _read_data(self, reader, conn):
        lines = []
        while True:
            line = reader.readline()
            if not line:
                return None
            if self.mode == "drop-in-data" and len(lines) >= 1:
                conn.shutdown(socket.SHUT_RDWR)
                return None
            if line == b".\r\n":
                return b"".join(lines)
            lines.append(line[1:] if line.startswith(b".") else line)


def _path(line):
    start, end = line.find(b"<"), line.rfind(b">")
    return line[start + 1:end]
