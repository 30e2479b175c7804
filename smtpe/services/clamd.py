"""clamd client (original-behaviour.md §7.2).

A clamd on this machine (unix socket, loopback or unspecified address) is asked to read the
file itself (`nSCAN <absolute path>`); a remote one gets the bytes (`nINSTREAM`, each chunk
prefixed by its 4-byte big-endian length, then a zero length). The reply is one line:
`<name>: OK`, `<name>: <signature> FOUND` or `<name>: <text> ERROR`. Anything but OK or FOUND is
reported as a failure (`error`): the file was not judged.
"""
import os
import struct

from . import Job, Message

DEFAULT_PORT = 3310
DEFAULT_TIMEOUT = 120.0
REPLY_LIMIT = 65536  # a reply is one short line; the original cut it at 999 bytes


def _framed(chunk):
    return struct.pack(">I", len(chunk)) + chunk


class ClamdJob(Job):
    service_name = "clamd"
    default_port = DEFAULT_PORT

    def __init__(self, loop, path, hosts, timeout, on_done, data=None, make_file=None):
        """`data`/`make_file`: the message is in memory (smtpe.services.Message)."""
        super().__init__(loop, hosts, timeout, on_done)
        self.path = os.fsencode(path)
        self.message = Message(self.path, data, make_file)
        self.result["file"] = self.path
        self.result["is_infected"] = False

    def exchange(self, stream):
        # Listen first: clamd may answer (and close) before it has all of a stream.
        stream.read_line(self.guard(self._replied), self.timeout, REPLY_LIMIT)
        if self.connected_locally():
            try:
                path = os.path.abspath(self.message.file())
            except OSError as exc:
                self.fail("writing the spool file: %s" % (exc.strerror or exc))
                return
            if b"\n" in path:
                self.fail("file name contains a newline")
                return
            stream.write(b"nSCAN " + path + b"\n")
        else:
            self.send_parts([b"nINSTREAM\n", self.message.slice(frame=_framed), _framed(b"")])

    def _replied(self, line):
        if line is None:
            self.fail(self.read_failed())
            return
        verdict = line.rstrip().upper()
        fields = {"reply": line, "is_infected": verdict.endswith(b" FOUND")}
        if not (fields["is_infected"] or verdict.endswith(b" OK")):
            # `... ERROR`, or not a clamd answer at all: the file was not judged.
            text = line.rstrip().decode("utf-8", "replace") or "empty reply"
            fields["error"] = "clamd %s: %s" % (self.result["service_host"], text)
        self.finish(**fields)
