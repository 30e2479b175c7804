"""Session and transaction ids: the original's format, unique within a burst and across
forked workers."""
import os
import re
import time

from smtpe.ids import BASE62, SessionIds, TransactionIds, time62
from smtpe.stamps import process_id

ID_SESS = re.compile(r"^[0-9A-Za-z]{6}\d{5}\d{5}00$")


def test_a_session_id_is_time62_pid_counter_and_00():
    before = time62()
    first = SessionIds().next_session()
    assert ID_SESS.match(first)
    assert first[:6] in (before, time62())          # (the second may have turned)
    assert first[6:11] == "%05d" % (os.getpid() % 100000)
    assert first[11:16] == "00001"


def test_a_burst_in_one_second_differs_by_its_counter_only():
    ids = SessionIds()
    burst = [ids.next_session() for _ in range(1000)]
    assert len(set(burst)) == 1000
    assert [int(value[11:16]) for value in burst] == list(range(1, 1001))


def test_the_time_part_follows_the_clock(monkeypatch):
    ids = SessionIds()
    now = [time.mktime((2026, 12, 4, 10, 0, 0, 0, 0, -1))]
    monkeypatch.setattr(time, "time", lambda: now[0])
    first = ids.next_session()
    now[0] += 1
    second = ids.next_session()
    assert first[:6] == time62(now[0] - 1) and second[:6] == time62(now[0])
    assert first[:5] == second[:5] and first[5] != second[5]   # the seconds digit moved


def test_a_forked_worker_numbers_its_sessions_with_its_own_pid():
    ids = SessionIds()
    ids.next_session()                     # the parent's stamp and pid are remembered
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:                          # the worker: report its id and pid, and go
        try:
            os.write(writer, ("%s %d %d" % (ids.next_session(), os.getpid(), process_id())).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        session, pid, remembered = pipe.read().split()
    os.waitpid(child, 0)
    assert int(remembered) == int(pid) != os.getpid()
    assert session[6:11] == "%05d" % (int(pid) % 100000)


def test_transaction_ids_extend_the_session_id_and_wrap():
    ids = TransactionIds("ABCDEF123450000100")
    seen = [ids.next() for _ in range(3843)]
    assert len(set(seen)) == 3843
    assert all(value[:-2] == "ABCDEF1234500001" and value[-2] in BASE62 for value in seen)
    assert ids.next() == seen[0]
