# cython: language_level=3
"""The event loop: one `selectors` selector, a timer heap and a call-soon queue; and its
timers: a pending call_later, and a Deadline that moves all the time on one lazily kept
timer.

Everything in a worker (client sockets, smart-host connections, DNS, services) runs on one
Loop. Callbacks are plain callables; there are no futures. Knows nothing of SMTP or Lua.

Compiled: every message passes through the loop's turn and its timers many times (a
session moves its idle deadline at every wait for input, a smart-host stream its reply
deadline at every request); typed, a turn and a deadline move cost a fraction of a Python
method's.
"""
import heapq
import itertools
import selectors
import time


# Cancelled timers stay in the heap until they reach its top (a read timeout of 300 s that
# was cancelled after a millisecond stays for 300 s); once they are the majority of a heap
# this large, the heap is rebuilt without them, so its size follows the live timers.
COMPACT_MIN = 512

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

cdef class Loop


cdef class Timer:
    """A pending call_later; cancel() is cheap (lazy removal from the heap)."""
    cdef public double when
    cdef public object callback
    cdef public object args
    cdef public bint cancelled
    cdef public Loop _loop        # while the timer is in that loop's heap

    def __init__(self, double when, callback, args, Loop loop=None):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._loop = loop

    def cancel(self):
        cdef Loop loop = self._loop
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = self.args = None
        self._loop = None
        if loop is not None:
            loop._timer_cancelled()


cdef class Deadline:
    """A deadline that moves all the time (a read timeout per request, an idle timeout per
    wait for input) on one lazily kept timer: `set` costs no heap push unless the deadline
    comes nearer than the timer armed; a timer that fires early re-arms itself for what is
    left. on_expiry() runs once the deadline passes while set."""
    cdef public object loop
    cdef public object on_expiry
    cdef bint _armed              # a deadline is set (`when` holds it)
    cdef double _when
    cdef public Timer timer

    def __init__(self, loop, on_expiry):
        self.loop = loop
        self.on_expiry = on_expiry
        self._armed = False       # (the timer may stay armed when not: it then finds none)
        self._when = 0.0
        self.timer = None

    def set(self, double seconds):
        cdef double when = self.loop.time() + seconds
        self._when = when
        self._armed = True
        timer = self.timer
        if timer is None or timer.when > when:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_later(seconds, self._check)

    def clear(self):
        self._armed = False

    def cancel(self):
        """For good: no timer left in the loop."""
        self._armed = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self):
        cdef double remaining
        self.timer = None
        if not self._armed:
            return
        remaining = self._when - self.loop.time()
        if remaining > 0:
            self.timer = self.loop.call_later(remaining, self._check)
        else:
            self._armed = False
            self.on_expiry()


cdef class Loop:
    cdef object _selector
    cdef public dict _readers, _writers    # fd -> callback (tests look: nothing left open)
    cdef list _timers          # heap of (when, sequence, Timer): compared in C, FIFO on ties
    cdef object _sequence
    cdef Py_ssize_t _cancelled  # cancelled timers still in the heap
    cdef list _soon, _turn_end
    cdef bint _running
    cdef public object time
    cdef dict __dict__         # what the loop's users keep on it (resolver, smart-host pool)

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._readers = {}
        self._writers = {}
        self._timers = []
        self._sequence = itertools.count()
        self._cancelled = 0
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

    cdef _set(self, fd, dict table, callback):
        known = fd in self._readers or fd in self._writers
        table[fd] = callback
        mask = self._mask(fd)
        if known:
            self._selector.modify(fd, mask)
        else:
            self._selector.register(fd, mask)

    cdef _unset(self, fd, dict table):
        if table.pop(fd, None) is None:
            return
        mask = self._mask(fd)
        if mask:
            self._selector.modify(fd, mask)
        else:
            self._selector.unregister(fd)

    cdef int _mask(self, fd):
        return (EVENT_READ if fd in self._readers else 0) | (EVENT_WRITE if fd in self._writers else 0)

    # -- time ---------------------------------------------------------------------------
    def call_later(self, double delay, callback, *args):
        cdef double when = self.time() + delay
        timer = Timer(when, callback, args, self)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    cdef void _timer_cancelled(self):
        self._cancelled += 1
        if self._cancelled > COMPACT_MIN and self._cancelled * 2 > len(self._timers):
            # in place: _run_timers may be walking this very list
            self._timers[:] = [entry for entry in self._timers if not (<Timer>entry[2]).cancelled]
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
        cdef int mask
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

    cdef _next_timeout(self, max_wait):
        cdef double due
        if self._soon:
            return 0
        timers = self._timers
        while timers and (<Timer>timers[0][2]).cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
        if not timers:
            return max_wait
        due = max(0.0, <double>timers[0][0] - self.time())
        return due if max_wait is None else min(max_wait, due)

    cdef _run_timers(self):
        cdef Timer timer
        cdef double now = self.time()
        timers = self._timers
        while timers and (<double>timers[0][0] <= now or (<Timer>timers[0][2]).cancelled):
            timer = heapq.heappop(timers)[2]
            if timer.cancelled:
                self._cancelled -= 1
                continue
            timer._loop = None     # out of the heap: a later cancel() has nothing to count
            callback, args = timer.callback, timer.args
            timer.cancel()
            callback(*args)

    cdef _run_soon(self):
        # Calls queued while running wait for the next turn, so a chain of call_soon never
        # starves socket I/O.
        soon, self._soon = self._soon, []
        for callback, args in soon:
            callback(*args)

    cdef _run_turn_end(self):
        while self._turn_end:  # (a callback may queue another, e.g. a reply that logs)
            calls, self._turn_end = self._turn_end, []
            for callback in calls:
                callback()

    def close(self):
        self._selector.close()
