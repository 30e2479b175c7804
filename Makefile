# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
PORT ?= 2525

.PHONY: setup run test test-quick bench bench-check binary clean

# Cython in this environment too: the in-place rebuild below runs outside pip's build sandbox.
setup:
	$(PYTHON) -m pip install -q --disable-pip-version-check 'Cython>=3.0' -e '.[test]'
	$(PYTHON) setup.py -q build_ext --inplace

# smtpe on 127.0.0.1:$(PORT) with the sample policy: mail is filed under var/mail/<recipient>/new
run: setup
	mkdir -p var/spool var/mail
	$(PYTHON) -m smtpe -daemon file= script=lua/examples/maildir.lua \
		smtp-server-address=127.0.0.1 smtp-server-port=$(PORT) spool-dir=var/spool workers=1

test: setup
	$(PYTHON) -m pytest -q -p no:randomly tests

test-quick: setup
	$(PYTHON) -m pytest -q -x -m "not slow" tests

# benchmarks against Postfix smtp-sink (tests/perf/run; BENCH_FLAGS=--quick for a tenth of the load)
bench: setup
	$(PYTHON) tests/perf/run $(BENCH_FLAGS)

# exits non-zero when a workload falls more than 15% below tests/perf/baseline.json
bench-check: setup
	$(PYTHON) tests/perf/run --check $(BENCH_FLAGS)

# the single executable build/out/smtpe (PyInstaller one-file; see README)
binary:
	PYTHON=$(PYTHON) build/build.sh

clean:
	rm -rf build/lib* build/temp* build/out dist *.egg-info smtpe/_speedups/*.c smtpe/_speedups/*.so var
