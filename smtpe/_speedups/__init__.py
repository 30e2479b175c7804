"""Cython leaves of smtpe: the content toolkit (line reader, message scanner, text.find,
iXhash) and the per-message I/O objects (client socket transport, outbound stream, the
loop's timers). They depend on nothing else of smtpe (the I/O objects know the loop and
their owner only by the few methods they call). Built by setup.py; `python setup.py
build_ext --inplace` for a checkout."""
