"""Entry point of the single executable (PyInstaller runs a script, not `python -m smtpe`)."""
from smtpe.cli import main

raise SystemExit(main())
