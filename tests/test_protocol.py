"""Sans-IO protocol rules: command words, sequence table, paths, reply texts."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpe import protocol as p


@pytest.mark.parametrize("line, verb, arg", [
    (b"HELO example.org", "HELO", b"example.org"),
    (b"ehlo  example.org ", "EHLO", b"example.org"),
    (b"MAIL FROM:<a@b.c> SIZE=10", "MAIL", b"FROM:<a@b.c> SIZE=10"),
    (b"QUIT", "QUIT", b""),
    (b"xclient ADDR=1.2.3.4", "XCLIENT", b"ADDR=1.2.3.4"),
])
def test_known_commands_are_whole_words(line, verb, arg):
    assert p.split_command(line) == (verb, arg)


@pytest.mark.parametrize("line", [b"HELOX foo", b"DATAX", b"QUITTING", b"MAILFROM:<a@b.c>", b"VRFY x",
                                  b"VERB +debug", b"", b"\xff\xfe"])
def test_other_words_are_unknown(line):
    assert p.split_command(line)[0] is None


SEQUENCE = {
    # verb: states where it is allowed
    "MAIL": {p.HELO, p.EHLO},
    "RCPT": {p.MAIL, p.RCPT},
    "DATA": {p.RCPT},
}


@pytest.mark.parametrize("state", [p.NONE, p.ACCEPT, p.HELO, p.EHLO, p.MAIL, p.RCPT])
@pytest.mark.parametrize("verb", sorted(p.COMMANDS))
def test_sequence_table(verb, state):
    expected = state in SEQUENCE[verb] if verb in SEQUENCE else True
    assert p.is_allowed(verb, state) is expected


@pytest.mark.parametrize("token, for_mail, expected", [
    (b"<Jo@Ex.COM>", True, (b"Jo@Ex.COM", b"ex.com")),
    (b"<>", True, (b"", b"")),
    (b"<@a.org,@b.org:x@y.z>", True, (b"x@y.z", b"y.z")),
    (b"<john <j@x.org>>", True, (b"j@x.org", b"x.org")),
    (b"a <b@c.de> c", True, (b"b@c.de", b"c.de")),
    (b"<postmaster>", False, (b"postmaster", b"")),
    (b"<user>", True, (b"user", b"")),
    (b'<"odd name"@x.org>', True, (b'"odd name"@x.org', b"x.org")),
    (b"< a@b.cd >", True, (b"a@b.cd", b"b.cd")),
])
def test_paths(token, for_mail, expected):
    assert p.parse_path(token, for_mail) == expected


@pytest.mark.parametrize("token, for_mail, reason", [
    (b"<a@b.c", True, "5.1.0 imbalanced angle brackets in path"),
    (b"<a@b>", True, "5.1.7 invalid domain name"),
    (b"<a@[1.2.3.4]>", True, "5.1.7 invalid domain name"),
    (b"<a@[1.2.3.4]>", False, "5.1.3 invalid domain name"),
    (b"<a..b@c.de>", True, "5.1.7 invalid local part"),
    (b"<@:a@b.cd>", True, "5.1.0 invalid source route"),
    (b"<a@-x.org>", False, "5.1.3 invalid domain name"),
])
def test_path_errors(token, for_mail, reason):
    with pytest.raises(p.PathError) as error:
        p.parse_path(token, for_mail)
    assert error.value.reason == reason


def test_strict_path_rules():
    strict = p.PathRules(angle_brackets=True, local_length=True, domain_length=True)
    for token, reason in [(b"a@b.cd", "5.1.0 address does not conform to RFC 2821 syntax"),
                          (b"<a @b.cd>", "5.1.0 address does not conform to RFC 2821 syntax"),
                          (b"<user>", "5.1.7 address incomplete"),
                          (b"<" + b"x" * 65 + b"@b.cd>", "5.1.0 local-part too long, see RFC 2821 section 4.5.3.1")]:
        with pytest.raises(p.PathError) as error:
            p.parse_path(token, True, strict)
        assert error.value.reason == reason
    assert p.parse_path(b"<" + b"x" * 65 + b"@b.cd>", True) == (b"x" * 65 + b"@b.cd", b"b.cd")


def test_path_argument_and_parameters():
    assert p.path_argument(b"FROM:<a@b.cd> SIZE=100 BODY=8BITMIME") == (b"<a@b.cd>", b"SIZE=100 BODY=8BITMIME")
    assert p.path_argument(b"FROM: <a@b.cd>") == (b"<a@b.cd>", b"")
    assert p.path_argument(b"FROM <a@b.cd>") is None
    assert p.mail_parameters(b"SIZE=100 body=8BITMIME SMTPUTF8") == {"SIZE": b"100", "BODY": b"8BITMIME", "SMTPUTF8": None}


def test_reply_codes():
    assert p.reply_code(b"250 ok") == 250
    assert p.reply_code(b"  451-x") == 451
    assert p.reply_code(b"hello") == 0
    assert p.is_positive(0) and p.is_positive(250) and not p.is_positive(354) and not p.is_positive(550)


def test_default_reply_texts_are_the_originals():
    r = p.Replies("mx.test")
    assert r.banner("ID") == "220 mx.test ESMTP ID"
    assert r.helo("c.org", "192.0.2.1", "[192.0.2.1]") == "250 Hello c.org (192.0.2.1, [192.0.2.1])"
    assert r.ok() == "250 2.0.0 OK"
    assert r.mail_ok("a@b.c") == "250 2.1.0 sender <a@b.c> OK"
    assert r.rcpt_ok("a@b.c") == "250 2.1.0 recipient <a@b.c> OK"
    assert r.data() == '354 enter mail, end with "." on a line by itself'
    assert r.quit("ID") == "221 2.0.0 mx.test closing connection ID"
    assert r.unknown("FOO") == "502 5.5.1 E000 FOO command unknown"
    assert r.out_of_sequence("DATA") == "503 5.5.1 E000 DATA out of sequence"
    assert r.path_error("5.1.7 invalid domain name") == "553 5.1.7 invalid domain name E000 "
    assert r.size_exceeded(10) == "552 5.3.4 E000 message size exceeds 10"
    assert r.null_recipient() == "550 5.7.1 E000 null recipient invalid"
    assert r.no_recipients() == "554 5.5.0 E000 no recipients"
    assert r.accepted("T") == "250 2.0.0 E000 message T accepted"
    assert r.try_again("T") == "451 4.4.5 E000 try again later T"
    assert r.rejected("T") == "550 5.7.0 E000 message T rejected"
    assert r.empty("T") == "550 5.6.0 E000 message T is empty"
    assert r.missing_argument() == "501 5.5.2 E000 missing argument"
    assert r.syntax_error() == "501 5.5.2 E000 syntax error"
    assert r.auth_ok() == "235 2.0.0 E000 authenticated"
    assert r.internal_error() == "421 4.3.0 E000 internal error"
    assert r.rate_client("h", "1.2.3.4", 5, 4) == "421 4.4.5 E000 h [1.2.3.4] connections 5 exceed 4/60s"
    assert r.default_at_dot(250, "T") == r.accepted("T")
    assert r.default_at_dot(550, "T") == r.rejected("T")
    assert r.default_at_dot(451, "T") == r.try_again("T")
    assert p.Replies("h", "http://x/?").unknown("X") == "502 5.5.1 http://x/?E000 X command unknown"


def test_ehlo_and_help_texts():
    r = p.Replies("mx.test")
    lines = r.ehlo("c.org", "192.0.2.1", "h", xclient=True, pipelining=True, auth=True, max_size=0).split("\r\n")
    assert lines == ["250-Hello c.org (192.0.2.1, h)", "250-ENHANCEDSTATUSCODES",
                     "250-XCLIENT ADDR HELO NAME PORT PROTO", "250-PIPELINING", "250-8BITMIME",
                     "250-AUTH PLAIN LOGIN", "250 SIZE 0"]
    minimal = r.ehlo("c", "ip", "h", xclient=False, pipelining=False, auth=False, max_size=5).split("\r\n")
    assert minimal == ["250-Hello c (ip, h)", "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250 SIZE 5"]
    help_lines = r.help().split("\r\n")
    assert help_lines[0] == "214-2.0.0 ESMTP supported commands:" and help_lines[-1] == "214 2.0.0 End"
    assert all(line.startswith("214-2.0.0") for line in help_lines[:-1])


# -- the compiled readers (smtpe/_speedups/smtpsyntax.pyx) against plain statements of the rules

def rule_split_command(line):
    verb, _, rest = line.partition(b" ")
    word = verb.decode("latin-1").upper()
    if not verb.isascii() or word not in p.COMMANDS:
        return None, line
    return word, rest.strip(b" \t")


def rule_path_argument(arg):
    if b":" not in arg:
        return None
    rest = arg.split(b":", 1)[1].lstrip(b" \t")
    if rest.startswith(b"<"):
        match = re.match(rb"(<.*>[^ ]*|[^ ]*)( (.*))?$", rest, re.S)   # up to the space after the last >
    else:
        match = re.match(rb"([^ \t]*)([ \t](.*))?$", rest, re.S)
    return match.group(1), (match.group(3) or b"").strip()


def rule_reply_code(value):
    match = re.match(rb"\s*[+-]?\d+", value)
    return int(match.group(0)) if match else 0


LINE_BYTES = st.lists(st.sampled_from([b"MAIL", b"mail", b"RcPt", b"DATA", b"XCLIENT", b"HELOX", b" ", b"\t",
                                       b":", b"<", b">", b"a@b", b"=", b"\xff", b"\xe9", b"2", b"5", b"0", b"-",
                                       b"\r", b"x"]), max_size=12).map(b"".join)


@settings(max_examples=1500, deadline=None)
@given(LINE_BYTES)
def test_the_compiled_readers_follow_the_rules(line):
    assert p.split_command(line) == rule_split_command(line)
    assert p.path_argument(line) == rule_path_argument(line)
    assert p.reply_code(line) == rule_reply_code(line)


@pytest.mark.parametrize("text", ["250 ok", "", "h\xe9 latin-1", "euro \u20ac", b"250 bytes\r\n"])
def test_reply_bytes_is_latin1_with_replacement_and_bytes_pass(text):
    expected = text.encode("latin-1", "replace") if isinstance(text, str) else text
    assert p.reply_bytes(text) == expected

