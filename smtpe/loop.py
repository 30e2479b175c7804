"""The event loop: one `selectors` selector, a timer heap and a call-soon queue.

Everything in a worker (client sockets, smart-host connections, DNS, services) runs on one
Loop. Callbacks are plain callables; there are no futures. Knows nothing of SMTP or Lua.
"""
import heapq
import selectors
import time

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class Timer:
    """A pending call_later; cancel() is cheap (lazy removal from the heap)."""
    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when, callback, args):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True
        self.callback = self.args = None

    def __lt__(self, other):
        return self.when < other.when


class Loop:
    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._readers = {}
        self._writers = {}
        self._timers = []
        self._soon = []
        self._running = False
        self.time = time.monotonic

    # -- file descriptors ------------------------------------------------------------
    def add_reader(self, fd, callback):
        self._set(fd, self._readers, callback)

    def remove_reader(self, fd):
        self._unset(fd, self._readers)

    def add_writer(self, fd, callback):
        self._set(fd, self._writers, callback)

    def remove_writer(self, fd):
        self._unset(fd, self._writers)

    def _set(self, fd, table, callback):
        known = fd in self._readers or fd in self._writers
        table[fd] = callback
        mask = self._mask(fd)
        if known:
            self._selector.modify(fd, mask)
        else:
            self._selector.register(fd, mask)

    def _unset(self, fd, table):
        if table.pop(fd, None) is None:
            return
        mask = self._mask(fd)
        if mask:
            self._selector.modify(fd, mask)
        else:
            self._selector.unregister(fd)

    def _mask(self, fd):
        return (EVENT_READ if fd in self._readers else 0) | (EVENT_WRITE if fd in self._writers else 0)

    # -- time ---------------------------------------------------------------------------
    def call_later(self, delay, callback, *args):
        timer = Timer(self.time() + delay, callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def call_soon(self, callback, *args):
        self._soon.append((callback, args))

    # -- running ------------------------------------------------------------------------
    def stop(self):
        self._running = False

    def run(self):
        self._running = True
        while self._running:
            self.run_once()

    def run_once(self, max_wait=None):
        timeout = self._next_timeout(max_wait)
        for key, mask in self._selector.select(timeout):
            fd = key.fd
            if mask & EVENT_READ:
                callback = self._readers.get(fd)
                if callback is not None:
                    callback()
            if mask & EVENT_WRITE:
                callback = self._writers.get(fd)
                if callback is not None:
                    callback()
        self._run_timers()
        self._run_soon()

    def _next_timeout(self, max_wait):
        if self._soon:
            return 0
        timers = self._timers
        while timers and timers[0].cancelled:
            heapq.heappop(timers)
        timeout = max_wait
        if timers:
            due = max(0.0, timers[0].when - self.time())
            timeout = due if timeout is None else min(timeout, due)
        return timeout

    def _run_timers(self):
        timers = self._timers
        now = self.time()
        while timers and (timers[0].cancelled or timers[0].when <= now):
            timer = heapq.heappop(timers)
            if not timer.cancelled:
                callback, args = timer.callback, timer.args
                timer.cancel()
                callback(*args)

    def _run_soon(self):
        # Calls queued while running wait for the next turn, so a chain of call_soon never
        # starves socket I/O.
        soon, self._soon = self._soon, []
        for callback, args in soon:
            callback(*args)

    def close(self):
        self._selector.close()
