"""smtpe.tld: the original's tld.json vectors, with the places where smtpe differs on
purpose (current data, no prefix quirk) spelled out, and the rules of the lookup on the
installed IANA and Public Suffix List data."""
import pytest

from smtpe import tld
from tests.reference.vectors import cases, raw

# Where smtpe's answer differs from the original's (libsnert HEAD, 2024-10 data), and why.
# Keys: (domain, field of the vector) -> smtpe's value.
PREFIX_QUIRK = ("the original took a suffix that was only the beginning of a list entry "
                "(`uk` of `uk.com`, `com` of `com.au`); smtpe wants a whole entry")
NEWER_DATA = ("the Public Suffix List lists azurestaticapps.net itself (as well as "
              "1.azurestaticapps.net ...), the original's SURBL-derived two-level list did not")
DIFFERENCES = {
    ("co.uk", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    ("uk", "index_valid_nth_tld_2"): (0, PREFIX_QUIRK),
    ("uk", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    ("uk", "has_valid_nth_tld_2"): (False, PREFIX_QUIRK),
    ("com", "index_valid_nth_tld_2"): (0, PREFIX_QUIRK),
    ("com", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    ("com", "has_valid_nth_tld_2"): (False, PREFIX_QUIRK),
    ("com.", "index_valid_nth_tld_2"): (0, PREFIX_QUIRK),
    ("com.", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    ("com.", "has_valid_nth_tld_2"): (False, PREFIX_QUIRK),
    ("com.au", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    # blogspot.co is a registrable name under .co, so its TLD starts at offset 10
    ("blogspot.co", "index_valid_tld"): (10, PREFIX_QUIRK),
    ("blogspot.co", "index_valid_nth_tld_2"): (0, PREFIX_QUIRK),
    ("blogspot.co", "index_valid_nth_tld_3"): (0, PREFIX_QUIRK),
    ("blogspot.co", "has_valid_nth_tld_2"): (False, PREFIX_QUIRK),
    ("a.b.azurestaticapps.net", "index_valid_tld"): (5, NEWER_DATA),
    ("a.b.azurestaticapps.net", "index_valid_nth_tld_2"): (5, NEWER_DATA),
    ("a.b.azurestaticapps.net", "has_valid_nth_tld_2"): (True, NEWER_DATA),
    ("x.1.azurestaticapps.net", "index_valid_nth_tld_2"): (5, NEWER_DATA),
    ("x.1.azurestaticapps.net", "has_valid_nth_tld_2"): (True, NEWER_DATA),
}


def answers(domain):
    return {
        "index_valid_tld": tld.index_valid_tld(domain),
        "index_valid_nth_tld_1": tld.index_valid_nth_tld(domain, 1),
        "index_valid_nth_tld_2": tld.index_valid_nth_tld(domain, 2),
        "index_valid_nth_tld_3": tld.index_valid_nth_tld(domain, 3),
        "has_valid_tld": tld.has_valid_tld(domain),
        "has_valid_nth_tld_1": tld.has_valid_nth_tld(domain, 1),
        "has_valid_nth_tld_2": tld.has_valid_nth_tld(domain, 2),
    }


@pytest.mark.parametrize("vector", cases("tld.json", "vectors"))
def test_vector(vector):
    got = answers(raw(vector["domain"]))
    for field, value in got.items():
        if field not in vector:
            continue
        difference = DIFFERENCES.get((vector["domain"], field))
        if difference is None:
            assert value == vector[field], field
        else:
            assert value == difference[0], "%s (%s)" % (field, difference[1])
            assert value != vector[field]


def test_levels_and_offsets():
    assert tld.index_valid_nth_tld(b"www.example.co.uk", 2) == 13
    assert tld.index_valid_nth_tld(b"WWW.EXAMPLE.CO.UK.", 2) == 13
    assert tld.index_valid_tld(b"x.act.edu.au") == 3
    assert tld.index_valid_nth_tld(b"example.com", 0) == 0
    assert tld.index_valid_nth_tld(b"example.com", 4) == 0
    assert tld.index_valid_tld(None) == 0 and not tld.has_valid_tld(b"")


def test_level_one_is_the_iana_root_zone():
    names = tld.lists().names[1]
    assert {b"com", b"uk", b"xn--p1ai", b"shop"} <= names
    assert not {b"local", b"test", b"invalid", b"localhost", b"lan"} & names
    assert "\u0440\u0444".encode() in names  # .xn--p1ai written in UTF-8


def test_wildcard_and_exception_rules():
    # *.ck and !www.ck: any name under ck is a level-2 suffix, except www.ck
    assert tld.index_valid_nth_tld(b"shop.foo.ck", 2) == 6
    assert tld.index_valid_nth_tld(b"www.ck", 2) == 0
    assert tld.index_valid_tld(b"www.ck") == 5
    # *.kawasaki.jp and !city.kawasaki.jp at level 3
    assert tld.index_valid_nth_tld(b"a.b.kawasaki.jp", 3) == 3
    assert tld.index_valid_nth_tld(b"city.kawasaki.jp", 3) == 0


def test_private_suffixes_count_like_the_original_surbl_lists():
    assert tld.index_valid_tld(b"foo.blogspot.com") == 5


def test_data_versions_are_reported():
    versions = tld.data_versions()
    assert versions["iana"].isdigit() and len(versions["iana"]) == 10
    assert versions["psl"] != "unknown"
