"""+test: one SMTP session on standard input and output, for trying a script by hand. The
client is 127.0.0.1; a line that is not an SMTP command runs as Lua (it may wait on DNS and
services) and its results are printed. QUIT or end of input ends it."""
import os

from .server import Worker
from ._speedups.transport import ReadControl


class StdioTransport(ReadControl):
    """The transport interface of SocketTransport over file descriptors 0 and 1."""

    def __init__(self, loop, read_fd=0, write_fd=1):
        super().__init__(loop, read_fd)
        self.write_fd = write_fd

    def _on_readable(self):
        data = os.read(self.fd, 65536)
        if not data:
            self.pause_reading()
            self.session.eof_received()
            return
        self.session.data_received(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def write(self, data):
        if not self.closed:
            os.write(self.write_fd, data)

    def flush(self):
        pass

    def when_drained(self, callback):
        callback(not self.closed)

    def cancel_drained(self, callback):
        pass

    def close(self):
        self.closed = True
        self.pause_reading()


def run_test_session(options, log):
    worker = Worker(options, log)
    worker.session_closed = lambda session: worker.loop.stop()
    worker.test_mode = True
    from .session import Session
    session = Session(worker, StdioTransport(worker.loop), ("127.0.0.1", 0), None)
    worker.sessions.add(session)
    session.start()
    worker.loop.run()
    return 0
