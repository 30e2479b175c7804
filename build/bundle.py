"""What goes into the single executable besides what PyInstaller's import analysis finds.
Used by build/smtpe.spec, and by tests/test_binary.py to check the bundle."""
import glob
import importlib.metadata
import os
import re
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# lupa ships one extension per Lua flavour; smtpe uses lua51 only (the others add ~2 MB).
LUPA_UNUSED = ["lupa.lua52", "lupa.lua53", "lupa.lua54", "lupa.lua55", "lupa.luajit20", "lupa.luajit21"]
# Reached by import analysis through optional paths (publicsuffixlist's updater, cffi's
# helpers) but never used by smtpe, which speaks plain TCP: leaving them out halves the binary.
NOT_NEEDED = ["requests", "urllib3", "cryptography", "OpenSSL", "charset_normalizer", "chardet",
              "certifi", "ssl", "_ssl", "readline"]
# Dependencies whose needs import analysis covers (for pycares see hidden_imports).
ANALYSED = {"lupa", "pycares"}


def lua_files():
    """(source, bundle folder) pairs: lua/ of the checkout becomes smtpe/lua/ in the bundle,
    where smtpe.engine looks (beside its own module)."""
    pairs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "lua", "**", "*.lua"), recursive=True)):
        relative = os.path.relpath(os.path.dirname(path), os.path.join(ROOT, "lua"))
        pairs.append((path, os.path.normpath(os.path.join("smtpe", "lua", relative))))
    return pairs


def cython_imports():
    """Python-level imports inside the .pyx files: analysis cannot see into the compiled
    extensions."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "smtpe", "_speedups", "*.pyx")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                match = re.match(r"\s*(?:from\s+([\w.]+)\s+import\s|import\s+([\w.]+))", line)
                name = match and (match.group(1) or match.group(2))
                # (a relative import names a sibling, collected with the package anyway)
                if name and not name.startswith((".", "libc", "libcpp", "cpython", "cython")):
                    names.add(name)
    return sorted(names)


def dependency_modules():
    """Top-level modules of pyproject.toml's other dependencies (a TLD list package, ...):
    their data files and submodules are collected whole."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        requirements = tomllib.load(handle)["project"]["dependencies"]
    wanted = {_normal(re.match(r"[A-Za-z0-9_.-]+", req).group(0)) for req in requirements} - ANALYSED
    modules = set()
    for module, dists in importlib.metadata.packages_distributions().items():
        if not module.startswith("_") and not module.endswith(".py") \
                and any(_normal(dist) in wanted for dist in dists):
            modules.add(module)
    return sorted(modules)


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()
