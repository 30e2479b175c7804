"""The event loop: one `selectors` selector, a timer heap and a call-soon queue.

Everything in a worker (client sockets, smart-host connections, DNS, services) runs on one
Loop. Callbacks are plain callables; there are no futures. Knows nothing of SMTP or Lua.
"""
import heapq
import itertools
import selectors
import time

from ._speedups.timers import Deadline, Timer  # noqa: F401  (Deadline: for the loop's users)

# Cancelled timers stay in the heap until they reach its top (a read timeout of 300 s that
# was cancelled after a millisecond stays for 300 s); once they are the majority of a heap
# this large, the heap is rebuilt without them, so its size follows the live timers.
COMPACT_MIN = 512

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class Loop:
    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._readers = {}
        self._writers = {}
        self._timers = []          # heap of (when, sequence, Timer): compared in C, FIFO on ties
        self._sequence = itertools.count()
        self._cancelled = 0        # cancelled timers still in the heap
        self._soon = []
        self._turn_end = []
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
        when = self.time() + delay
        timer = Timer(when, callback, args, self)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def _timer_cancelled(self):
        self._cancelled += 1
        if self._cancelled > COMPACT_MIN and self._cancelled * 2 > len(self._timers):
            # in place: _run_timers may be walking this very list
            self._timers[:] = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def call_soon(self, callback, *args):
        self._soon.append((callback, args))

    def at_turn_end(self, callback):
        """callback() once, at the end of this turn, before the loop waits again: for work
        that gains from being gathered over a turn (replies to send, log lines)."""
        self._turn_end.append(callback)

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
        self._run_turn_end()

    def _next_timeout(self, max_wait):
        if self._soon:
            return 0
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
        timeout = max_wait
        if timers:
            due = max(0.0, timers[0][0] - self.time())
            timeout = due if timeout is None else min(timeout, due)
        return timeout

    def _run_timers(self):
        timers = self._timers
        now = self.time()
        while timers and (timers[0][0] <= now or timers[0][2].cancelled):
            timer = heapq.heappop(timers)[2]
            if timer.cancelled:
                self._cancelled -= 1
                continue
            timer._loop = None     # out of the heap: a later cancel() has nothing to count
            callback, args = timer.callback, timer.args
            timer.cancel()
            callback(*args)

    def _run_soon(self):
        # Calls queued while running wait for the next turn, so a chain of call_soon never
        # starves socket I/O.
        soon, self._soon = self._soon, []
        for callback, args in soon:
            callback(*args)

    def _run_turn_end(self):
        while self._turn_end:  # (a callback may queue another, e.g. a reply that logs)
            calls, self._turn_end = self._turn_end, []
            for callback in calls:
                callback()

    def close(self):
        self._selector.close()
