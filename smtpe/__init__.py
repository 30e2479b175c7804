"""smtpe: a programmable SMTP engine whose per-connection policy is a Lua script."""
VERSION = "0.2.0"
API_VERSION = "0.1"
COPYRIGHT = "Copyright 2026 the smtpe authors"
