#!/usr/bin/env bash
# One command for the single executable: build/out/smtpe (PyInstaller one-file, spec
# build/smtpe.spec). It needs no Python on the target machine. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# PyInstaller, Cython and the runtime dependencies named in pyproject.toml.
deps=$($PYTHON -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
$PYTHON -m pip install -q --disable-pip-version-check "pyinstaller>=6.10,<7" "Cython>=3.0" $deps

$PYTHON setup.py -q build_ext --inplace
$PYTHON -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath build/out --workpath build/out/work build/smtpe.spec

ls -l build/out/smtpe
build/out/smtpe -version || test $? -eq 64   # action options exit 64, as the original
