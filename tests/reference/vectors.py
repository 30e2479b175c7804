"""Access to the conformance vectors made by running the original C
(../shared/spec/vectors beside the repository). Tests that need them skip when the folder
is absent. JSON strings hold bytes decoded as latin-1."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VECTORS = os.path.normpath(os.path.join(ROOT, "..", "shared", "spec", "vectors"))


def path(name):
    full = os.path.join(VECTORS, name)
    if not os.path.exists(full):
        pytest.skip("conformance vectors not available (%s)" % full)
    return full


def load_json(name):
    with open(path(name), encoding="utf-8") as handle:
        return json.load(handle)


def read_bytes(name):
    with open(path(name), "rb") as handle:
        return handle.read()


def raw(value):
    """A vector string as the bytes it stands for (None stays None)."""
    return None if value is None else value.encode("latin-1")


def cases(name, key=None):
    """The vector list of `name` (or its `key` entry) for pytest.mark.parametrize, or a
    single skipped case when the vectors are missing, so that collection never fails."""
    full = os.path.join(VECTORS, name)
    if not os.path.exists(full):
        return [pytest.param(None, marks=pytest.mark.skip(reason="vectors not available"))]
    with open(full, encoding="utf-8") as handle:
        data = json.load(handle)
    return data[key] if key else data
