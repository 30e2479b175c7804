"""Spool file lifecycle: written as DATA arrives, header edits applied between hook.dot and
forwarding, removed at the end of the transaction or when the connection dies."""
import os


class Spool:
    def __init__(self, directory, name):
        self.path = os.path.join(directory, name)
        self.size = 0
        self._file = open(self.path, "wb", buffering=65536)

    @property
    def writing(self):
        """True while DATA is still being written (before the dot)."""
        return self._file is not None

    def write(self, data):
        self._file.write(data)
        self.size += len(data)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def rewrite_headers(self, headers, body_offset):
        """Replace the header section by `headers` (each without line end), keeping the body
        from `body_offset` (None: the message had no body). Written to a temporary file and
        renamed over the spool file, so a failure leaves the original untouched."""
        self.close()
        temporary = self.path + ".tmp"
        with open(self.path, "rb") as source, open(temporary, "wb") as target:
            for header in headers:
                target.write(header + b"\r\n")
            target.write(b"\r\n")
            if body_offset is not None:
                source.seek(body_offset)
                while True:
                    block = source.read(1 << 20)
                    if not block:
                        break
                    target.write(block)
            self.size = target.tell()
        os.replace(temporary, self.path)

    def remove(self):
        self.close()
        for path in (self.path, self.path + ".tmp"):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
