"""Run smtpe sessions in-process, without sockets: a real Worker, Engine and Lua script,
with a memory transport standing in for the client socket. For protocol and hook tests."""
import io
import os
import re
import shutil
import tempfile
import textwrap

from smtpe.log import Log
from smtpe.options import Options
from smtpe.server import Worker
from smtpe.session import Session


class MemoryTransport:
    def __init__(self):
        self.output = bytearray()
        self.closed = False
        self.reading = True

    def start(self, session):
        self.session = session

    def resume_reading(self):
        self.reading = True

    def pause_reading(self):
        self.reading = False

    def write(self, data):
        if not self.closed:
            self.output += data

    def flush(self):
        pass

    def when_drained(self, callback):
        callback(not self.closed)

    def cancel_drained(self, callback):
        pass

    def close(self):
        self.closed = True


class Harness:
    """A worker with one script; `connect()` opens in-process sessions."""

    def __init__(self, tmp_path, script, **options):
        self.tmp_path = tmp_path
        os.makedirs(str(tmp_path), exist_ok=True)
        path = os.path.join(str(tmp_path), "policy.lua")
        with open(path, "w") as handle:
            handle.write(textwrap.dedent(script))
        spool = os.path.join(str(tmp_path), "spool")
        os.makedirs(spool, exist_ok=True)
        values = {"script": path, "spool-dir": spool, "dns-servers": "127.0.0.1:9",
                  "dns-max-timeout": "2", "verbose": "+warn +info"}
        values.update({name.replace("_", "-"): str(value) for name, value in options.items()})
        self.options = Options(values)
        self.log_stream = io.StringIO()
        self.worker = Worker(self.options, Log(verbose=values["verbose"], stream=self.log_stream))
        self.worker.loop.resolver = None   # no PTR lookups: protocol tests need no DNS server
        self.worker.engine.host_name = "mx.test"
        self.worker.replies.host = "mx.test"
        self.spool_dir = spool

    def connect(self, address="192.0.2.1", port=40000):
        return Client(self, address, port)

    def run(self, seconds=0.0):
        """Turn the loop until nothing is due (or for `seconds`)."""
        loop = self.worker.loop
        deadline = loop.time() + seconds
        loop.run_once(0)
        while loop.time() < deadline:
            loop.run_once(min(0.05, max(0.0, deadline - loop.time())))

    @property
    def log(self):
        return self.log_stream.getvalue()


class Client:
    def __init__(self, harness, address, port):
        self.harness = harness
        self.transport = MemoryTransport()
        self.session = Session(harness.worker, self.transport, (address, port), ("127.0.0.1", 25))
        harness.worker.sessions.add(self.session)
        self._seen = 0
        self.session.start()
        harness.run()

    def send(self, data, settle=0.0):
        """Feed bytes as if they arrived on the socket; -> the new output as text."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.session.data_received(data)
        self.harness.run(settle)
        return self.new_output()

    def close_input(self):
        self.session.eof_received()
        self.harness.run()

    def new_output(self):
        data = bytes(self.transport.output[self._seen:])
        self._seen = len(self.transport.output)
        return data.decode("latin-1")

    @property
    def closed(self):
        return self.transport.closed


def hide_ids(text):
    """Session and transaction ids replaced by <ID>, so that transcripts compare exactly."""
    return re.sub(r"\b[0-9A-Za-z]{6}\d{10}[0-9A-Za-z]{2}\b", "<ID>", text)


def replies_in_pieces(script, writes):
    """A client of a fresh worker running `script` sends each write (a list of byte pieces)
    piece by piece -> [the banner, the replies to each write], ids hidden."""
    folder = tempfile.mkdtemp(prefix="smtpe-pieces-")
    try:
        client = Harness(folder, script).connect()
        replies = [client.new_output()]
        for pieces in writes:
            replies.append("".join(client.send(piece) for piece in pieces))
        return [hide_ids(reply) for reply in replies]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
