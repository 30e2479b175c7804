"""What every log line and session id carries: this process's id and the current second as
text. Both are asked for many times a second, so neither costs a system call or a time
formatting each time."""
import os
import time

# Kept current across fork (workers are forked after start-up).
_process_id = os.getpid()


def _forked():
    global _process_id
    _process_id = os.getpid()


os.register_at_fork(after_in_child=_forked)


def process_id():
    return _process_id


class SecondStamp:
    """render(second) of the current second of the clock, made once per second."""
    __slots__ = ("render", "second", "text")

    def __init__(self, render):
        self.render = render
        self.second = None
        self.text = ""

    def now(self):
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.text = self.render(second)
        return self.text
