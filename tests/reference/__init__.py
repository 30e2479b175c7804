"""Plain-Python statements of the Cython routines in smtpe._speedups, written for clarity,
not speed. Property tests compare the fast routines with these on random input, and
tests/perf/bench_text.py measures how much faster the Cython versions are."""
