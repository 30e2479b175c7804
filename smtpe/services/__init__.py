"""Asynchronous clients of the services a policy script can call: clamd, spamd and HTTP.

Every request is a `Job`: it connects through smtpe.netclient (host failover, connect
timeout), exchanges its request and reply under a deadline, and calls `on_done(result)`
exactly once with a result dict (str keys; bytes, numbers or booleans as values) that always
holds `service_name`, `service_host` (label of the host connected, None if none was) and
`elapsed_time` (seconds, float). A failed job's result also holds `error` (a readable str).
`cancel()` abandons a job silently. Nothing here raises into the loop. Knows nothing of Lua.
"""
import ipaddress
import os
import socket

from .. import netclient

CHUNK_SIZE = 65536  # bytes of a file read and queued per loop turn while sending


class Job:
    service_name = None
    default_port = None

    def __init__(self, loop, hosts, timeout, on_done):
        self.loop = loop
        self.hosts = list(hosts)
        self.timeout = timeout
        self.on_done = on_done
        self.started = loop.time()
        self.stream = None
        self.connector = None
        self.deadline = None
        self.finished = False
        self.result = {"service_name": self.service_name, "service_host": None}

    # -- life cycle ----------------------------------------------------------------------
    def start(self):
        """Connect and run the exchange; the job may finish (fail) before this returns."""
        connector = netclient.connect(self.loop, self.hosts, self.default_port, self.timeout,
                                   self.guard(self._connected, always=True))
        if not self.finished:
            self.connector = connector
        return self

    def _connected(self, stream, reason=None):
        self.connector = None
        if self.finished:  # cancelled while connecting
            if stream is not None:
                stream.close()
            return
        if stream is None:
            self.fail(reason or "connect failed")
            return
        self.stream = stream
        self.result["service_host"] = stream.host
        # One deadline for the whole exchange, so a peer that stops reading our request
        # (and so never lets a write drain) cannot hold the job either.
        self.deadline = self.loop.call_later(self.timeout, self.guard(self._expired))
        self.exchange(stream)

    def exchange(self, stream):
        """Send the request and read the reply; subclasses end with finish() or fail()."""
        raise NotImplementedError

    def _expired(self):
        self.deadline = None
        self.fail("timed out after %gs" % self.timeout)

    def finish(self, **fields):
        if self.finished:
            return
        self.finished = True
        self._release()
        self.result.update(fields)
        self.result["elapsed_time"] = self.loop.time() - self.started
        on_done, self.on_done = self.on_done, None
        on_done(self.result)

    def fail(self, reason):
        host = self.result.get("service_host")
        where = " %s" % host if host else ""
        self.finish(error="%s%s: %s" % (self.service_name, where, reason))

    def cancel(self):
        """Abandon the job: close its connection; on_done is not called."""
        self.finished = True
        self.on_done = None
        self._release()

    def _release(self):
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.connector is not None:
            self.connector.cancel()
            self.connector = None
        if self.stream is not None:
            self.stream.close()

    # -- helpers for subclasses ----------------------------------------------------------
    def guard(self, callback, always=False):
        """Wrap a loop/stream callback: an unexpected exception fails this job instead of
        escaping into the loop, and a finished job ignores late calls (unless `always`)."""
        def guarded(*args):
            if self.finished and not always:
                return
            try:
                callback(*args)
            except Exception as exc:  # a bug or an odd reply must cost one job, not the worker
                self.fail("%s: %s" % (type(exc).__name__, exc))
        return guarded

    def read_failed(self):
        """Why a read callback got None."""
        return (self.stream.error if self.stream is not None else None) or "connection closed by peer"

    def send_parts(self, parts, on_sent=None):
        """Queue `parts` (bytes, or FileSlice) one chunk per loop turn, so a large file is
        neither read into memory at once nor sent through deep recursion."""
        Sender(self, parts, on_sent).pump()

    def connected_locally(self):
        """True when the peer is a unix socket or a loopback/unspecified address."""
        sock = self.stream.sock
        if sock.family == socket.AF_UNIX:
            return True
        try:
            address = ipaddress.ip_address(sock.getpeername()[0])
        except (OSError, ValueError):
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        return address.is_loopback or address.is_unspecified


class FileSlice:
    """Bytes `start` to the end of the file at `path`, optionally framed per chunk."""

    def __init__(self, path, start=0, frame=None):
        self.path = path
        self.start = start
        self.frame = frame  # callable(chunk) -> bytes to send for that chunk

    def chunks(self):
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            while True:
                chunk = handle.read(CHUNK_SIZE)
                if not chunk:
                    return
                yield self.frame(chunk) if self.frame else chunk


class MemorySlice(FileSlice):
    """The same for a message held in memory (`data`, never changed in place)."""

    def __init__(self, data, start=0, frame=None):
        super().__init__(None, start, frame)
        self.data = data

    def chunks(self):
        with memoryview(self.data) as view:
            for offset in range(self.start, len(view), CHUNK_SIZE):
                chunk = bytes(view[offset:offset + CHUNK_SIZE])
                yield self.frame(chunk) if self.frame else chunk


class Message:
    """What a scanner job sends or names: the file at `path`, or, while the connection's own
    spool holds it in memory, `data` (Spool.snapshot()): the bytes go over the socket without
    a file, and `make_file()` writes the file only for a peer that reads it itself (a local
    clamd). Spares a file create and unlink (50-200 us on ext4) per scan."""

    def __init__(self, path, data=None, make_file=None):
        self.path = path
        self.data = data
        self.make_file = make_file

    def size(self):
        return len(self.data) if self.data is not None else os.path.getsize(self.path)

    def slice(self, start=0, frame=None):
        if self.data is not None:
            return MemorySlice(self.data, start, frame)
        return FileSlice(self.path, start, frame)

    def file(self):
        """-> the path, the file written first if need be (raises OSError)."""
        if self.data is not None and self.make_file is not None:
            self.make_file()
        return self.path


class Sender:
    """Feeds a job's parts to its stream, one chunk each time the previous one drained."""

    def __init__(self, job, parts, on_sent):
        self.job = job
        self.chunks = self._chunks(parts)
        self.on_sent = on_sent

    @staticmethod
    def _chunks(parts):
        for part in parts:
            if isinstance(part, FileSlice):
                yield from part.chunks()
            elif part:
                yield part

    def pump(self):
        job = self.job
        if job.finished or job.stream is None or job.stream.closed:
            self.chunks.close()
            return
        chunk = next(self.chunks, None)
        if chunk is None:
            if self.on_sent is not None:
                self.on_sent()
            return
        # The next chunk goes on a later loop turn, never from inside write().
        job.stream.write(chunk, on_drained=lambda: job.loop.call_soon(job.guard(self.pump)))
