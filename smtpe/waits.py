"""The one suspension protocol of smtpe.

A `Wait` is work that completes later: a Lua API call that must wait (dns.wait, service.wait,
client.write, smtp.sendfile ...) returns one, the hook's coroutine yields it, and the engine
calls `start(resume)`. The provider calls `resume(*values)` exactly once, possibly at once
(inside start), and those values become the Lua call's return values. `cancel()` is called
instead when the connection goes away while the wait is pending; after it, resume must not be
called. The session uses the same protocol for its own waits (hooks, forwarding).
"""


READ = object()   # yielded by the session's dialogue: wait for more client input


class Wait:
    __slots__ = ()

    def start(self, resume):
        raise NotImplementedError

    def cancel(self):
        pass


class Done(Wait):
    """A wait that is already complete: resumes at once with fixed values."""
    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = values

    def start(self, resume):
        resume(*self.values)


class Callback(Wait):
    """Adapts callback-style work: `begin(resume)` starts it; `abort()` (optional) cancels."""
    __slots__ = ("begin", "abort")

    def __init__(self, begin, abort=None):
        self.begin = begin
        self.abort = abort

    def start(self, resume):
        self.begin(resume)

    def cancel(self):
        if self.abort is not None:
            self.abort()
