"""The Cython DATA framing (smtpe._speedups.linereader.LineReader.read_data) against a
plain-Python statement of the rule, on random input cut into random chunks."""
from hypothesis import given, settings, strategies as st

from smtpe._speedups.linereader import LineReader

CR, LF, DOT = 13, 10, 46


def reference(data):
    """-> (message, done, end): the rule read off the whole input at once. The message ends
    only at CRLF "." CRLF (the start counts as after a CRLF); a dot starting a line is
    removed; a bare CR or LF becomes CRLF but does not start a line."""
    out = bytearray()
    i, line_start, size = 0, True, len(data)
    while i < size:
        if line_start:
            if data[i:i + 3] == b".\r\n":
                return bytes(out), True, i + 3
            if data[i] == DOT:
                i += 1
            line_start = False
            if i >= size:
                break
        if data[i] == CR and data[i + 1:i + 2] == b"\n":
            out += b"\r\n"
            i += 2
            line_start = True
        elif data[i] in (CR, LF):
            out += b"\r\n"
            i += 1
        else:
            out.append(data[i])
            i += 1
    return bytes(out), False, size


def read_in_chunks(data, cuts, max_data_line=4096):
    reader = LineReader(max_data_line=max_data_line)
    reader.start_data()
    out, done, start = bytearray(), False, 0
    for cut in sorted(set(cuts)) + [len(data)]:
        reader.feed(data[start:cut])
        start = cut
        while True:
            chunk, done = reader.read_data()
            out += chunk
            if done or not chunk:
                break
        if done:
            reader.feed(data[start:])
            break
    return bytes(out), done, reader


# Mostly the bytes that matter to the rule, so terminators and their near misses are common.
message_bytes = st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"\x00", b"\xff", b".\r\n"]),
                         max_size=60).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(message_bytes, st.lists(st.integers(min_value=0, max_value=80), max_size=8))
def test_chunked_reading_follows_the_rule(data, cuts):
    cuts = [cut for cut in cuts if cut <= len(data)]
    expected, expected_done, end = reference(data)
    out, done, reader = read_in_chunks(data, cuts)
    assert done == expected_done
    if done:
        assert out == expected
        assert reader.pending() == len(data) - end     # the rest stays for the commands
        assert reader.data_bytes == len(expected)
    else:
        # bytes that could still begin a terminator (a final CR, a dot at a line start)
        # are held back until more input comes
        assert expected.startswith(out) and len(expected) - len(out) <= 2


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=120))
def test_a_line_longer_than_the_limit_is_flagged(limit, length):
    data = b"a" * length + b"\r\n.\r\n"
    _, done, reader = read_in_chunks(data, [length // 2], max_data_line=limit)
    assert done and reader.data_line_too_long == (length > limit)


def test_smuggling_variants_never_end_the_message():
    for near_miss in (b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r.\r\n"):
        out, done, _ = read_in_chunks(b"x" + near_miss + b"y", [])
        assert not done and b"y" in out
