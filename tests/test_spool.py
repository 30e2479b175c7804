"""smtpe.spool.Spool on a real folder: memory first, the file when a path is needed, and a
memory copy that stays the message for readers that do not change the file."""
import os

import pytest

from smtpe.spool import Spool

MESSAGE = b"Subject: hi\r\nFrom: a@b.cd\r\n\r\nbody\r\n"
BODY_OFFSET = MESSAGE.index(b"\r\n\r\n") + 4


def finished_spool(folder, memory_limit=1 << 16, message=MESSAGE):
    spool = Spool(str(folder), "msg", memory_limit)
    spool.write(message)
    spool.close()
    return spool


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_a_small_message_stays_in_memory_and_leaves_no_file(tmp_path):
    spool = finished_spool(tmp_path)
    assert spool.contents() == MESSAGE and not os.path.exists(spool.path)
    spool.remove()
    assert os.listdir(tmp_path) == []


def test_a_reader_that_keeps_memory_gets_the_file_and_edits_stay_in_memory(tmp_path):
    spool = finished_spool(tmp_path)
    assert spool.materialise(keep_memory=True) == spool.path
    assert read(spool.path) == MESSAGE and spool.contents() == MESSAGE
    inode = os.stat(spool.path).st_ino

    spool.rewrite_headers([b"X-Tag: yes", b"Subject: hi"], BODY_OFFSET)
    edited = b"X-Tag: yes\r\nSubject: hi\r\n\r\nbody\r\n"
    assert spool.contents() == edited             # what the smart host gets
    assert read(spool.path) == MESSAGE            # the file was not touched
    assert os.stat(spool.path).st_ino == inode

    spool.materialise(keep_memory=True)           # the path is used again: written anew
    assert read(spool.path) == edited and spool.contents() == edited
    assert os.stat(spool.path).st_ino != inode    # renamed over, not edited in place
    spool.remove()
    assert os.listdir(tmp_path) == []


def test_a_user_that_may_change_the_file_makes_it_the_message(tmp_path):
    spool = finished_spool(tmp_path)
    spool.materialise(keep_memory=True)
    spool.rewrite_headers([b"X-Tag: yes"], BODY_OFFSET)
    spool.materialise()                           # e.g. Lua's io.open: the stale file is rewritten
    assert spool.on_disk and spool.contents() is None
    assert read(spool.path) == b"X-Tag: yes\r\n\r\nbody\r\n"
    with open(spool.path, "ab") as handle:        # what the script writes is what goes on
        handle.write(b"more\r\n")
    spool.rewrite_headers([b"X-Two: 2"], len(b"X-Tag: yes\r\n\r\n"))
    assert read(spool.path) == b"X-Two: 2\r\n\r\nbody\r\nmore\r\n"
    spool.remove()
    assert os.listdir(tmp_path) == []


def test_a_snapshot_of_a_kept_copy_is_the_original(tmp_path):
    spool = finished_spool(tmp_path)
    spool.materialise(keep_memory=True)
    snapshot = spool.snapshot()
    spool.rewrite_headers([b"X-Tag: yes"], BODY_OFFSET)
    assert bytes(snapshot) == MESSAGE


def test_while_data_arrives_the_file_is_the_message_even_for_a_reader(tmp_path):
    spool = Spool(str(tmp_path), "msg", 1 << 16)
    spool.write(b"Subject: hi\r\n")
    spool.materialise(keep_memory=True)
    spool.write(b"\r\nbody\r\n")
    spool.close()
    assert spool.on_disk and read(spool.path) == b"Subject: hi\r\n\r\nbody\r\n"


def test_a_file_that_cannot_be_written_keeps_the_memory_copy(tmp_path):
    spool = finished_spool(tmp_path / "missing")
    with pytest.raises(OSError):
        spool.materialise(keep_memory=True)
    assert spool.contents() == MESSAGE and not spool.on_disk
    spool.remove()


def test_a_failed_rewrite_of_a_stale_file_is_tried_again_on_the_next_use(tmp_path):
    spool = finished_spool(tmp_path)
    spool.materialise(keep_memory=True)
    spool.rewrite_headers([b"X-Tag: yes"], BODY_OFFSET)
    os.mkdir(spool.path + ".tmp")                 # the temporary file cannot be made
    with pytest.raises(OSError):
        spool.materialise(keep_memory=True)
    assert read(spool.path) == MESSAGE
    os.rmdir(spool.path + ".tmp")
    spool.materialise(keep_memory=True)
    assert read(spool.path) == b"X-Tag: yes\r\n\r\nbody\r\n"
