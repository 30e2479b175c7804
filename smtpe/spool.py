"""The message of one transaction: kept in memory while it is small, on disk when it grows
or when something needs its path; header edits applied between hook.dot and forwarding;
removed at the end of the transaction or when the connection dies.

Why memory first: creating, closing and unlinking a file cost more than everything else a
small message goes through, and most messages of most policies never need a file (the
client hears 250 only after the smart host's 250, so the spool is no durability promise).
The file appears, under the path the transaction always had, as soon as anything is about
to use that path: Lua's io/os functions and smtpe's API functions that take a file name
tell the engine first (smtpe.engine.Engine.spool_path_used), or when the message grows past
`memory_limit`. From then on the file is the message (spamd PROCESS may replace it); the
memory copy is dropped. Except for readers that only read the file (clamd, spamd CHECK,
smtp.sendfile: `keep_memory`): the memory copy stays the message, header edits go to it
alone (the file is marked stale and written again only if its path is used again), and the
smart host gets it from memory. A file create, a rewrite and an unlink cost 50-200 us each
on ext4; an edit in memory a few.
"""
import os


class Spool:
    def __init__(self, directory, name, memory_limit=0):
        self.path = os.path.join(directory, name)
        self.path_bytes = os.fsencode(self.path)
        self.memory_limit = memory_limit
        self._memory = bytearray()     # the message while memory holds it (None: the file is)
        self._file = None              # the file being written (DATA still arriving)
        self.has_file = False          # a file exists at `path` (remove() unlinks it)
        self._file_stale = False       # the memory copy changed since the file was written
        self.removed = False
        self.writing = True            # True while DATA is still arriving (before the dot)
        if memory_limit <= 0:
            self.materialise()

    def write(self, data):
        if self._file is not None:
            self._file.write(data)
            return
        self._memory += data
        if len(self._memory) > self.memory_limit:
            self.materialise()

    def close(self):
        """The end of DATA: nothing more will be written."""
        self.writing = False
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def on_disk(self):
        """True when the file is the message (no memory copy)."""
        return self._memory is None

    def materialise(self, keep_memory=False):
        """Make sure the file at `path` holds the message (raises OSError); -> path. The file
        becomes the message, unless `keep_memory` (a reader that does not change the file,
        once DATA is over): then the memory copy stays the message."""
        memory = self._memory
        if memory is None:
            if self.removed:         # a late reader (a scan the script did not wait for)
                raise FileNotFoundError(2, "the transaction is over", self.path)
            return self.path
        if not self.has_file:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.has_file = True
            if self.writing:             # the rest of DATA goes to the file
                self._file = open(descriptor, "wb", buffering=65536)
                self._file.write(memory)
                self._memory = None
                return self.path
            self._file_stale = True      # until the write below is complete
            with open(descriptor, "wb", buffering=0) as handle:
                handle.write(memory)
            self._file_stale = False
        elif self._file_stale:
            self._replace_file(lambda target: target.write(memory))
            self._file_stale = False
        if not keep_memory:
            self._memory = None
        return self.path

    def contents(self):
        """The message while memory holds it, else None (read the file): the buffer itself,
        not a copy (after DATA nothing changes it in place: see snapshot())."""
        return self._memory

    def snapshot(self):
        """The complete message as it is now, for a reader that comes later and must not see
        what happens to the spool meanwhile (header edits, spamd PROCESS, removal): the
        memory buffer itself (no copy: once DATA is over nothing changes it in place, a
        rewrite builds a new one), or a file object open on the spool file (a rewrite
        renames a new file over it, removal unlinks it: the open file keeps the original).
        Only after close() (the end of DATA). The caller closes a file. Raises OSError."""
        memory = self.contents()
        return open(self.path, "rb") if memory is None else memory

    def rewrite_headers(self, headers, body_offset):
        """Replace the header section by `headers` (each without line end), keeping the body
        from `body_offset` (None: the message had no body); -> the new body offset. On disk it is written to a
        temporary file renamed over the spool file, so a failure leaves the original."""
        self.close()
        head = b"".join(header + b"\r\n" for header in headers) + b"\r\n"
        new_offset = len(head) if body_offset is not None else None
        if self._memory is not None:
            # a new buffer, never an edit in place: snapshot() handed the old one out
            body = self._memory[body_offset:] if body_offset is not None else b""
            self._memory = bytearray(head) + body
            self._file_stale = self.has_file
            return new_offset

        def copy(target):
            target.write(head)
            if body_offset is not None:
                with open(self.path, "rb") as source:
                    source.seek(body_offset)
                    while True:
                        block = source.read(1 << 20)
                        if not block:
                            break
                        target.write(block)
        self._replace_file(copy)
        return new_offset

    def _replace_file(self, write):
        """A new file at `path`, written by write(file object): written to a temporary file
        renamed over the old one, so a failure leaves the old one, and whoever has the old
        one open (a snapshot, a scanner) keeps reading it."""
        temporary = self.path + ".tmp"
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "wb") as target:
                write(target)
            os.replace(temporary, self.path)
        except OSError:
            _unlink(temporary)
            raise

    def remove(self):
        self.close()
        self._memory = None
        self.removed = True
        if self.has_file:
            self.has_file = False
            _unlink(self.path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
