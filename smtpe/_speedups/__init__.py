"""Cython leaves of smtpe (line reader, message scanner, text.find, iXhash). They depend on
nothing else of smtpe. Built by setup.py; `python setup.py build_ext --inplace` for a checkout."""
