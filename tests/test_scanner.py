"""The message scanner (smtpe._speedups.scanner): header events, MIME parts and URIs.

* the original's vectors (mime.json, uri_found.json: libsnert's mime.c/uri.c run on the
  sample messages), with smtpe's deliberate differences spelled out below;
* smtpe's own messages in tests/data/mime/;
* properties: any chunking gives the same result as the whole message; the Cython scanner
  agrees with the plain-Python statement in tests/reference/scanner_ref.py on random
  messages; so do its base64 and quoted-printable decoders;
* malformed input never crashes or stalls, and state stays bounded.
"""
import base64
import hashlib
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpe._speedups import scanner as scanner_module
from smtpe._speedups.scanner import BODY, EOH, HEADER, MessageScanner
from tests.reference import scanner_ref as reference
from tests.reference.vectors import cases, raw, read_bytes

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mime")
EMPTY_MD5 = hashlib.md5(b"").hexdigest().encode()


def md5(data):
    return hashlib.md5(data).hexdigest().encode()


def scan(message, chunk_sizes=None, body_lines=False):
    """Feed `message` in chunks of the given sizes (cycled; whole if None)."""
    scanner = MessageScanner(body_lines=body_lines)
    events, position, turn = [], 0, 0
    sizes = chunk_sizes or [max(len(message), 1)]
    while position < len(message):
        size = sizes[turn % len(sizes)]
        events += scanner.feed(message[position:position + size])
        position += size
        turn += 1
    events += scanner.finish()
    return {"events": events, "parts": scanner.parts, "uris": scanner.uris,
            "eoh_offset": scanner.eoh_offset, "length": scanner.length}


def unique_uris(uris):
    """uri.found's view: the first URI with each uri_raw (smtpe.api.mime.publish)."""
    seen, found = set(), []
    for entry in uris:
        if entry["uri_raw"] not in seen:
            seen.add(entry["uri_raw"])
            found.append(entry)
    return found


# -- mime.json: the original's parts -------------------------------------------------------------
# Messages where smtpe finds other parts on purpose: boundaries are the declared `boundary=`
# parameters, not any line that starts with `--` and a boundary character (helpers.md §3.1).
# Each maps to the encoded bodies smtpe finds, in order.
OWN_BOUNDARY_RULE = {
    # `--verbose` in the text was a boundary for the original: it split the part in two
    "syn-text-looks-like-boundary.eml": [b"", b"run with\r\n--verbose\r\nplease"],
    # a dash line made the original miss the real boundary after it ("missed-boundary bug")
    "syn-dashline-then-boundary.eml": [b"", b"text\r\n----------", b"second"],
    # so did a `--=20` signature line in a quoted-printable part
    "syn-qp-sig-then-boundary.eml": [b"", b"body\r\n--=20", b"next part"],
}
# message/rfc822 with a parameter is an embedded message too (the original's pattern was
# anchored at the end of the line, so the parameter made it an opaque body).
RFC822_WITH_PARAMETERS = "syn-rfc822-with-params.eml"
# The declared boundary `---=_NextPart_{?partrnd?}` holds bytes the original's boundary
# character rule refused: it saw one part and never decoded the quoted-printable bodies.
OPEN_BOUNDARY = "mime-multi-open-boundary.eml"


def intended_parts(vector):
    """The vector's parts with smtpe's deliberate differences applied (helpers.md §3)."""
    parts = vector["parts"]
    multipart = any(b"multipart/" in (raw(part["content_type"]) or b"").lower() for part in parts)
    intended = []
    for number, part in enumerate(parts, 1):
        encoded, decoded = raw(part["encoded_body"]), raw(part["decoded_body"])
        if not part.get("body_start_seen", True):
            # headers to the end of the message: one entry with an empty body, where the
            # original hashed the header text (§3.4)
            encoded = decoded = b""
        if multipart and number == len(parts) and encoded.endswith(b"\n") and not decoded.endswith(b"\n") \
                and b"base64" not in (raw(part["content_transfer_encoding"]) or b"").lower():
            decoded += b"\n"      # the original never gave the final LF to the decoder (§3.3)
        intended.append({
            "md5_encoded": md5(encoded), "md5_decoded": md5(decoded),
            "part_length": part["part_length"],
            "body_length": len(encoded),   # the original's counter accumulated (§3.5)
            "content_type": raw(part["content_type"]),
            "content_transfer_encoding": raw(part["content_transfer_encoding"]),
        })
    return intended


def vector_message(vector):
    return read_bytes(vector["vector_file"])


@pytest.mark.parametrize("vector", cases("mime.json", "messages"), ids=lambda v: v and v["name"])
def test_mime_vector(vector):
    name = vector["name"]
    if name in OWN_BOUNDARY_RULE or name in (RFC822_WITH_PARAMETERS, OPEN_BOUNDARY):
        pytest.skip("smtpe differs on purpose: see the test for this message")
    message = vector_message(vector)
    assert len(message) == vector["message_length"]
    result = scan(message)
    assert result["parts"] == intended_parts(vector)
    for part, original in zip(result["parts"], vector["parts"]):
        if original.get("body_start_seen", True) and original["body_length"] != part["body_length"]:
            # only where the original's counter accumulated (no blank line after headers)
            assert original["body_length"] > part["body_length"]


@pytest.mark.parametrize("name", sorted(OWN_BOUNDARY_RULE))
def test_mime_vector_boundaries_are_the_declared_ones(name):
    result = scan(read_bytes("synthetic/" + name))
    assert [part["md5_encoded"] for part in result["parts"]] == [md5(body) for body in OWN_BOUNDARY_RULE[name]]


def test_mime_vector_rfc822_with_parameters_is_an_embedded_message():
    parts = scan(read_bytes("synthetic/" + RFC822_WITH_PARAMETERS))["parts"]
    assert [part["content_type"] for part in parts] == [
        b"Content-Type: multipart/mixed; boundary=w", b"Content-Type: message/rfc822; x=y", None]
    assert parts[1]["body_length"] == 0 and parts[1]["part_length"] == 37
    assert parts[2]["md5_encoded"] == md5(b"body") and parts[2]["part_length"] == 22


def test_mime_vector_open_boundary_is_split_and_decoded():
    parts = scan(read_bytes(OPEN_BOUNDARY))["parts"]
    assert len(parts) == 4    # preamble, text/plain, text/html, epilogue
    assert [part["content_transfer_encoding"] for part in parts[1:3]] == \
        [b"Content-Transfer-Encoding: quoted-printable"] * 2
    assert parts[2]["md5_decoded"] != parts[2]["md5_encoded"]


# -- uri_found.json: the original's URIs --------------------------------------------------------
URI_INTENDED = {   # see tests/test_uri.py: the port after user:pass@ is read
    b"ftp://user:pw@ftp.example.com:2121/pub": {"host": b"ftp.example.com", "port": 2121},
}
URI_FIELDS = ("uri_raw", "uri_decoded", "scheme", "scheme_info", "user_info", "host", "port",
              "path", "query", "fragment", "mime_part")


def intended_uris(vector):
    found = []
    for entry in vector["uri_found"]:
        fields = {name: raw(entry[name]) if isinstance(entry[name], str) else entry[name] for name in URI_FIELDS}
        assert hashlib.md5(fields["uri_raw"]).hexdigest() == entry["md5_key"]
        fields.update(URI_INTENDED.get(fields["uri_raw"], {}))
        found.append(fields)
    return found


@pytest.mark.parametrize("vector", cases("uri_found.json", "messages"), ids=lambda v: v and v["name"])
def test_uri_found_vector(vector):
    if vector["name"] == OPEN_BOUNDARY:
        pytest.skip("smtpe decodes these parts on purpose: see test_uri_found_open_boundary")
    assert unique_uris(scan(vector_message(vector))["uris"]) == intended_uris(vector)


def test_uri_found_open_boundary_finds_decoded_urls():
    # The original saw undecoded quoted-printable and reported debris such as
    # `3D=22http://www=2Ew3=2Eorg/1999/xhtml=22`; smtpe decodes the parts first.
    raws = [entry["uri_raw"] for entry in unique_uris(scan(read_bytes(OPEN_BOUNDARY))["uris"])]
    assert b"http://www.w3.org/1999/xhtml" in raws
    assert b"http://jkmcif.earnplanet.pl.ua/" in raws
    assert not any(b"=2E" in entry for entry in raws)


# -- header events ------------------------------------------------------------------------------
def test_header_events_keep_folds_and_end_at_the_blank_line():
    message = b"Subject: a\r\n b\r\n\tc\r\nTo: x\r\n\r\nbody 1\r\nbody 2\r\n"
    result = scan(message, body_lines=True)
    assert result["events"] == [(HEADER, b"Subject: a\r\n b\r\n\tc"), (HEADER, b"To: x"), (EOH, b""),
                                (BODY, b"body 1"), (BODY, b"body 2")]
    assert result["eoh_offset"] == message.index(b"body 1")
    assert result["length"] == len(message)


def test_header_split_across_chunks_is_one_event():
    scanner = MessageScanner()
    assert scanner.feed(b"Subject: hel") == []
    assert scanner.feed(b"lo\r\n") == []           # the next line may be a fold
    assert scanner.feed(b" world\r\n") == []       # it was, and so may the next one be
    assert scanner.feed(b"To: x\r\n") == [(HEADER, b"Subject: hello\r\n world")]
    assert scanner.feed(b"\r\nbody\r\n") == [(HEADER, b"To: x"), (EOH, b"")]
    assert scanner.finish() == []


def test_header_is_complete_as_soon_as_the_next_line_starts():
    scanner = MessageScanner()
    assert scanner.feed(b"A: 1\r\n") == []
    assert scanner.feed(b"B") == [(HEADER, b"A: 1")]


def test_message_without_blank_line_ends_headers_at_the_dot():
    scanner = MessageScanner(body_lines=True)
    assert scanner.feed(b"A: 1\r\nB: 2\r\n") == [(HEADER, b"A: 1")]
    assert scanner.finish() == [(HEADER, b"B: 2"), (EOH, b"")]
    assert scanner.eoh_offset == 0


def test_body_lines_only_when_asked_and_last_partial_line_at_finish():
    scanner = MessageScanner(body_lines=True)
    assert scanner.feed(b"\r\nline\r\npart") == [(EOH, b""), (BODY, b"line")]
    assert scanner.finish() == [(BODY, b"part")]
    assert scanner.eoh_offset == 2
    plain = MessageScanner()
    assert plain.feed(b"\r\nline\r\npart") == [(EOH, b"")]
    assert plain.finish() == []


def test_empty_message():
    result = scan(b"")
    assert result["events"] == [(EOH, b"")] and result["parts"] == [] and result["length"] == 0


# -- smtpe's own messages (tests/data/mime) -----------------------------------------------------
def data(name):
    with open(os.path.join(DATA, name), "rb") as handle:
        return handle.read()


def test_nested_multipart_with_base64_and_qp_text():
    result = scan(data("nested.eml"))
    kinds = [part["content_type"] and part["content_type"].split(b";")[0] for part in result["parts"]]
    assert kinds == [b"Content-Type: multipart/mixed", b"Content-Type: multipart/alternative",
                     b"Content-Type: text/plain", b"Content-Type: text/html", None,
                     b"Content-Type: application/pdf", None]
    plain, html, pdf = result["parts"][2], result["parts"][3], result["parts"][5]
    assert plain["md5_decoded"] == md5(b"Hello, see https://docs.example.com/guide")
    assert html["md5_decoded"] == md5(b'<a href="http://www.example.org/a?b=1&amp;c=2">x</a>')
    assert pdf["md5_decoded"] == md5(b"%PDF-1.4 http://hidden.example.net/ not text\n")
    found = [(entry["uri_raw"], entry["mime_part"]) for entry in result["uris"]]
    assert found == [(b"https://docs.example.com/guide", 3), (b"http://www.example.org/a?b=1&c=2", 4)]


def test_boundary_with_transport_padding_and_inner_boundary_closed_by_outer():
    result = scan(data("padding-and-unclosed-inner.eml"))
    bodies = [part["md5_encoded"] for part in result["parts"]]
    assert bodies == [md5(b""), md5(b""), md5(b"inner one"), md5(b"outer two"), md5(b"epilogue\r\n")]


def test_embedded_message_is_its_own_part_and_is_searched():
    result = scan(data("rfc822.eml"))
    assert [part["content_type"] for part in result["parts"]] == [
        b"Content-Type: multipart/mixed; boundary=\"o\"", b"Content-Type: message/rfc822",
        b"Content-Type: text/plain"]
    assert result["parts"][1]["body_length"] == 0
    assert [(entry["host"], entry["mime_part"]) for entry in result["uris"]] == [(b"inner.example.com", 3)]


def test_broken_base64_and_binary_junk():
    result = scan(data("broken.eml"))
    assert len(result["parts"]) == 3
    assert result["parts"][1]["md5_decoded"] == md5(b"ABC")          # decoding stops at `=`
    assert result["parts"][2]["md5_encoded"] == md5(b"\x00\xff\x80 bytes\r\n\x00")


# -- properties ---------------------------------------------------------------------------------
VECTOR_FILES = ["mime-multi-crlf.eml", "mime-eicar-lf.eml", "uri-samples/qp1.txt",
                "uri-samples/message-rfc822.eml", "synthetic/syn-uri-mix.eml", "synthetic/syn-nested.eml"]


@pytest.mark.parametrize("name", VECTOR_FILES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=20))
def test_any_chunking_gives_the_same_result(name, sizes):
    message = read_bytes(name)
    whole = scan(message, body_lines=True)
    assert scan(message, sizes, body_lines=True) == whole


@pytest.mark.parametrize("name", VECTOR_FILES)
def test_byte_by_byte_gives_the_same_result(name):
    message = read_bytes(name)
    assert scan(message, [1]) == scan(message)


# Random messages: a soup of header lines, boundaries (declared or not), encoded text, HTML
# entities and binary, with CRLF, LF and stray CR, so that every state meets every byte.
LINES = st.sampled_from([
    b"Subject: hi", b"Content-Type: multipart/mixed; boundary=B1", b"Content-Type: text/plain",
    b'Content-Type: multipart/alternative; boundary="B2"', b"Content-Type: text/html",
    b"Content-Type: message/rfc822", b"Content-Type: application/octet-stream",
    b'Content-Type: application/x; name="a.txt"', b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b" folded", b"\tfolded", b"From x", b"",
    b"", b"--B1", b"--B1--", b"--B2", b"--B2--", b"--B1  ", b"--B3", b"-", b"--", b"---",
    b"no colon here", b"Bad name: x", b"http://www.example.com/a?b#c", b"www.example.org.",
    b"user@example.net", b"a=3D=22http://q.example.com/=22", b"=41=4a=\r", b"=\r", b"QUJD",
    b"aHR0cDovL2I2NC5leGFtcGxlLmNvbS8=", b"QUJD=QUJD", b"x&amp;y&#58;z&nbsp;w&shy;v;",
    b"http:&#47;&#47;e.example.com&#47;", b"\xa1Cexample\xa1Ocom", b"10.1.2.3", b"(http://p.example.com/)",
    b"\x00\xff\xfe", b"=", b"=4", b"mailto:x@example.com",
]) | st.binary(max_size=12)
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])


@st.composite
def messages(draw):
    lines = draw(st.lists(st.tuples(LINES, ENDINGS), max_size=40))
    return b"".join(line + ending for line, ending in lines)


def cut(message, points):
    points = sorted({point % (len(message) + 1) for point in points})
    pieces, start = [], 0
    for point in points + [len(message)]:
        pieces.append(message[start:point])
        start = point
    return [piece for piece in pieces if piece]


def scan_pieces(pieces, body_lines, **modes):
    scanner = MessageScanner(body_lines=body_lines, **modes)
    events = []
    for piece in pieces:
        events += scanner.feed(piece)
    events += scanner.finish()
    return {"events": events, "parts": scanner.parts, "uris": scanner.uris,
            "eoh_offset": scanner.eoh_offset, "length": scanner.length}


@settings(max_examples=600, deadline=None)
@given(messages(), st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_cython_scanner_agrees_with_the_plain_python_statement(message, points, body_lines):
    assert scan_pieces(cut(message, points), body_lines) == reference.scan(message, body_lines)


@settings(max_examples=300, deadline=None)
@given(messages(), st.lists(st.integers(0, 10_000), max_size=12), st.booleans())
def test_each_machine_alone_gives_what_it_gives_in_the_full_scanner(message, points, body_lines):
    """DATA runs the header splitter alone (mime=False), the scan on demand the MIME machine
    alone (events=False; smtpe/api/mime.py)."""
    pieces = cut(message, points)
    full = scan_pieces(pieces, body_lines)
    assert scan_pieces(pieces, body_lines, mime=False) == dict(full, parts=[], uris=[])
    assert scan_pieces(pieces, body_lines, events=False) == dict(full, events=[], eoh_offset=0)


def test_full_scans_counts_the_scanners_with_the_mime_machine():
    before = scanner_module.full_scans()
    MessageScanner(mime=False, body_lines=True).feed(b"Subject: x\r\n\r\nbody\r\n")
    assert scanner_module.full_scans() == before
    MessageScanner(events=False)
    MessageScanner()
    assert scanner_module.full_scans() == before + 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(0, 300), max_size=8))
def test_base64_decoder_agrees_with_the_plain_python_statement(data, points):
    assert scanner_module.decode_base64(cut(data, points)) == reference.base64_decode(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"=", b"=\r", b"=\r\n", b"=4", b"=41", b"=4a", b"=ZZ", b"\r\n", b"a", b" ",
                                 b"\n", b"\r", b"=\n"]), max_size=30).map(b"".join) | st.binary(max_size=60),
       st.lists(st.integers(0, 100), max_size=8), st.booleans())
def test_quoted_printable_decoder_agrees_with_the_plain_python_statement(data, points, at_boundary):
    assert scanner_module.decode_quoted_printable(cut(data, points), at_boundary) == \
        reference.qp_decode(data, at_boundary)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"A: 1", b" fold", b"\tfold", b"", b"B:", b"x", b"\r"]), ENDINGS),
                max_size=12).map(lambda lines: b"".join(a + b for a, b in lines)),
       st.lists(st.integers(0, 200), max_size=8), st.booleans())
def test_header_splitting_agrees_with_the_plain_python_statement(message, points, body_lines):
    result = scan_pieces(cut(message, points), body_lines)
    assert (result["events"], result["eoh_offset"]) == reference.split_headers(message, body_lines)


def test_decoders_examples():
    assert scanner_module.decode_base64([b"SGVs bG8g\r\nd29y!bGQ=\r\nIGFm"]) == b"Hello world"
    assert scanner_module.decode_base64([b"QUJDRA"]) == b"ABCD"
    assert scanner_module.decode_quoted_printable([b"soft=", b"\r\nbreak =4", b"1=4a=ZZ end="]) == \
        b"softbreak AJ=ZZ end="
    assert scanner_module.decode_quoted_printable([b"end="], at_boundary=True) == b"end"


# -- malformed input: bounded, linear, never crashes ---------------------------------------------
def test_hundred_nested_levels_are_bounded():
    head = b"".join(b'Content-Type: multipart/mixed; boundary="L%d"\r\n\r\n--L%d\r\n' % (n, n) for n in range(100))
    message = b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nhttp://deep.example.com/\r\n"
    message += b"".join(b"--L%d--\r\n" % n for n in reversed(range(100)))
    result = scan(message, [7])
    assert result == scan(message)
    # one entry per level whose boundary was kept, then the text; deeper boundaries are text
    assert len(result["parts"]) <= scanner_module.MAX_DEPTH + 70
    assert result["uris"] == [] or result["uris"][0]["host"] == b"deep.example.com"


def test_missing_and_wrong_boundaries():
    message = (b"Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\na\r\n"
               b"Content-Type: multipart/mixed; boundary=\"\"\r\n--\r\n")
    result = scan(message, [3])
    assert len(result["parts"]) == 1 and result["parts"][0]["body_length"] == len(message) - 33


def test_overlong_lines_in_headers_and_boundary_candidates():
    long_header = b"X-Long: " + b"a" * 200_000 + b"\r\n"
    long_name = b"b" * 200_000 + b"\r\n"
    long_dashes = b"--" + b"c" * 200_000 + b"\r\n"
    message = (long_header + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + long_name
               + long_dashes + b"--B--\r\n")
    result = scan(message, [997])
    assert result == scan(message)
    expected = reference.scan(message)
    assert (result["parts"], result["uris"]) == (expected["parts"], expected["uris"])
    top_headers = long_header + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    assert [part["part_length"] for part in result["parts"]] == \
        [len(top_headers), len(long_name) + len(long_dashes) - 2]


def test_large_part_in_small_chunks_is_linear():
    body = base64.encodebytes(os.urandom(3 << 20)).replace(b"\n", b"\r\n")
    message = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"--B--\r\n")
    timings = []
    for size in (65536, 512):
        started = time.process_time()
        result = scan(message, [size])
        timings.append(time.process_time() - started)
        assert result["parts"][1]["md5_decoded"] == md5(base64.decodebytes(body))
    assert timings[1] < 20 * timings[0] + 1.0     # more calls, same linear work


def test_long_token_is_thrown_away_and_state_stays_small():
    message = b"\r\n" + b"http://x.example.com/" + b"a" * 5_000_000 + b" http://y.example.com/\r\n"
    result = scan(message, [65536])
    assert [entry["host"] for entry in result["uris"]] == [b"y.example.com"]


def test_fifty_megabyte_part_streams_through():
    line = b"a" * 76 + b"\r\n"
    body = line * (50_000_000 // len(line))
    message = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
               + body + b"--B--\r\n")
    result = scan(message, [65536])
    assert len(result["parts"]) == 2 and result["uris"] == []
    assert result["parts"][1]["body_length"] == len(body) - 2
    assert result["parts"][1]["md5_encoded"] == md5(body[:-2])


def test_events_are_cut_at_max_event_length():
    limit = scanner_module.MAX_EVENT_LENGTH
    big_header = b"X-Big: " + b"h" * limit
    message = (big_header + b"\r\n fold\r\nSubject: ok\r\n\r\n" + b"b" * (2 * limit) + b"\r\nend\r\n")
    result = scan(message, [65536], body_lines=True)
    assert result["events"] == [(HEADER, big_header[:limit]), (HEADER, b"Subject: ok"), (EOH, b""),
                                (BODY, b"b" * limit), (BODY, b"end")]
    assert result == scan(message, body_lines=True)
    assert (result["events"], result["eoh_offset"]) == reference.split_headers(message, True)
