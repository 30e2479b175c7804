# cython: language_level=3
"""The Loop's timers (smtpe/loop.py): a pending call_later, and a Deadline that moves all
the time on one lazily kept timer.

Compiled: a session moves its idle deadline at every wait for input, and a smart-host
stream its reply deadline at every request (about ten moves per message), so each move
costs a fraction of a Python method's. Knows of the loop only time(), call_later() and
_timer_cancelled().
"""


cdef class Timer:
    """A pending call_later; cancel() is cheap (lazy removal from the heap)."""
    cdef public double when
    cdef public object callback
    cdef public object args
    cdef public bint cancelled
    cdef public object _loop      # while the timer is in that loop's heap

    def __init__(self, double when, callback, args, loop=None):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._loop = loop

    def cancel(self):
        if self.cancelled:
            return
        self.cancelled = True
        self.callback = self.args = None
        loop, self._loop = self._loop, None
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
