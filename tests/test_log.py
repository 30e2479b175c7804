"""smtpe.log.Log's lines: the format operators and multilog read, the levels the verbose
words let through, the process id of a worker forked within the same second, and the stamp
of lines gathered during one loop turn."""
import io
import os
import re
import time

from smtpe import log as log_module
from smtpe.log import Log

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) smtpe\[(\d+)\] ([a-z0-9]+): (.*)$")


class TurnLoop:
    """The one thing Log.batch needs of a loop: at_turn_end; end_turn() runs what was queued."""

    def __init__(self):
        self.queued = []

    def at_turn_end(self, callback):
        self.queued.append(callback)

    def end_turn(self):
        queued, self.queued = self.queued, []
        for callback in queued:
            callback()


def parsed(text):
    return [LINE.match(line).groups() for line in text.splitlines()]


def test_lines_carry_time_process_level_ident_and_text():
    stream = io.StringIO()
    log = Log(stream=stream, verbose="+warn +info")
    log.info("sender <a@b>", "1ABC")
    log.error(b"bytes \xff text")
    log.warn("careful")
    log.debug("not shown")
    log.log(9, "an unnamed level")
    lines = parsed(stream.getvalue())
    pid = str(os.getpid())
    assert [(p, level, text) for _, p, level, text in lines] == [
        (pid, "info", "1ABC sender <a@b>"), (pid, "err", "bytes \ufffd text"),
        (pid, "warning", "careful"), (pid, "9", "an unnamed level")]
    stamp = time.strftime("%Y-%m-%dT%H:%M", time.localtime())
    assert all(line[0].startswith(stamp[:13]) for line in lines)


def test_verbose_words_decide_info_warn_and_debug():
    stream = io.StringIO()
    log = Log(stream=stream, verbose="-info -warn +debug")
    log.info("no")
    log.warn("no")
    log.debug("yes")
    log.error("always")
    assert [text for *_, text in parsed(stream.getvalue())] == ["yes", "always"]


def test_a_child_forked_within_the_same_second_logs_its_own_process_id():
    reader, writer = os.pipe()
    log = Log(stream=io.StringIO())
    log.info("parent first")                      # the parent's prefixes are made and kept
    child = os.fork()
    if child == 0:                                # pragma: no cover (the child)
        try:
            stream = io.StringIO()
            log.stream = stream
            log.info("child")
            os.write(writer, stream.getvalue().encode())
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    with os.fdopen(reader) as pipe:
        (_, pid, _, text), = parsed(pipe.read())
    assert (pid, text) == (str(child), "child")


def test_the_lines_of_a_turn_share_its_stamp_and_the_next_turn_reads_the_clock(monkeypatch):
    clock = [1_800_000_000.2]
    monkeypatch.setattr(log_module.time, "time", lambda: clock[0])
    stream = io.StringIO()
    loop = TurnLoop()
    log = Log(stream=stream)
    log.batch(loop)
    log.info("first of the turn")
    clock[0] += 1.0
    log.info("same turn, a second later")
    loop.end_turn()
    log.info("next turn")
    loop.end_turn()
    stamps = [line[0] for line in parsed(stream.getvalue())]
    expected = [time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second)) for second in (1_800_000_000, 1_800_000_001)]
    assert stamps == [expected[0], expected[0], expected[1]]
