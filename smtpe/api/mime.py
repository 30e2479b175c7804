"""`mime.parts` and `uri.found` of the current message, from a full scan by the message scanner
(smtpe._speedups.scanner.MessageScanner; rules in shared/spec/helpers.md §3-4 and
original-behaviour.md §4.5-4.6):
* mime.parts[i] = {md5_encoded, md5_decoded, part_length, body_length, content_type,
  content_transfer_encoding} for each MIME part, in message order (1 = the top level);
* uri.found holds each URI once: its key, the lower-case hex MD5 of uri_raw, is appended to
  the array part (so `#uri.found` counts unique URIs and ipairs yields keys) and
  uri.found[key] = {uri_raw, uri_decoded, scheme, scheme_info, user_info, host, port, path,
  query, fragment, mime_part}. The first occurrence wins.
The tables are the transaction's own (a MessageTables per transaction, made by
Context.new_transaction_tables); entries go after any already there.

The scan is made on demand. It costs as much as all the rest a message goes through (two
MD5s per part, decoding, the URI search), and most scripts never read these tables. So DATA
streams only the top headers (smtpe.delivery), and at the dot (`at_dot`) the tables get the
message as received: the spool's snapshot (smtpe.spool.Spool.snapshot: header edits, spamd
PROCESS and the end of the transaction do not change it). Seen from Lua it is as if the scan
were made at the dot:
* before the dot both tables are empty; a script that got hold of either then (read
  `mime.parts` or `uri.found` in any earlier hook) has both filled at the dot;
* otherwise the scan runs when a hook first reads `mime.parts` or `uri.found` at or after the
  dot (hook.dot, hook.forward, hook.reset ...), and never for a script that does not.
Lua 5.1 ignores __len on tables and ipairs reads raw, so the laziness sits on the key of the
containing table (LAZY_TABLES below). The visible difference: until first read, `parts` is not
a raw key of `mime` (pairs, next, rawget), and `found` is never a raw key of `uri`.
One case is not covered: a message already in its spool file at the dot (bigger than
`spool-memory`) that a hook rewrites in place (not by renaming a new file over it) before the
first read is scanned as rewritten.
"""
import hashlib
import itertools

from .._speedups.scanner import MessageScanner

CHUNK = 65536   # the scan reads the message in pieces this big, as DATA brings it

# Run once at install with the Python function demand(serial); returns the factory of a
# transaction's tables. Weak keys and plain values (a serial, a table that does not hold its
# key): a table nobody references any more goes with its entries.
LAZY_TABLES = b"""
local demand = ...
local uri, setmetatable, rawset = uri, setmetatable, rawset
local pending = setmetatable({}, { __mode = "k" })   -- mime/found table -> serial: not read yet
local parts_of = setmetatable({}, { __mode = "k" })  -- mime table -> its parts, until first read
local now = __engine_uri_state                        -- now.found: uri.found of the hook now running

-- first read of a transaction's table: Python fills both if the dot is past, else notes that
-- the script holds them (they are filled at the dot)
local function settle(t)
	local serial = pending[t]
	if serial then
		pending[t] = nil
		demand(serial)
	end
end

local mime_meta = { __index = function(m, key)
	local parts = key == "parts" and parts_of[m]
	if parts then
		settle(m)
		parts_of[m] = nil
		rawset(m, "parts", parts)
		return parts
	end
end }

-- The engine keeps the uri.found of the hook now running in __engine_uri_state.found
-- (lua/prelude.lua sets it at every resume): `found` stays out of the raw table of `uri`, so
-- that each read comes to __index, and an assignment by a script goes there too.
setmetatable(uri, {
	__index = function(t, key)
		if key == "found" then
			local found = now.found
			settle(found)
			return found
		end
	end,
	__newindex = function(t, key, value)
		if key == "found" then
			now.found = value
		else
			rawset(t, key, value)
		end
	end,
})

return function(serial)
	local m, f, parts = setmetatable({}, mime_meta), {}, {}
	pending[m], pending[f], parts_of[m] = serial, serial, parts
	return m, f, parts
end
"""


class MessageTables:
    """One transaction's `mime` table (with `parts`) and `uri.found`, and what fills them."""
    __slots__ = ("engine", "serial", "mime", "found", "parts", "held", "source", "filled")

    def __init__(self, engine, serial, factory):
        self.engine = engine
        self.serial = serial
        self.mime, self.found, self.parts = factory(serial)
        self.held = False       # a script read one before the dot: fill at the dot
        self.source = None      # after the dot until filled: a Spool.snapshot() or a scanner
        self.filled = False

    def demanded(self):
        """A hook reads mime.parts or uri.found for the first time."""
        if self.source is not None:
            self.fill()
        elif not self.filled:
            self.held = True

    def complete(self, source):
        """The dot: the message (a Spool.snapshot() or a finished full scanner; None: it
        could not be read) is final."""
        self.source = source
        if source is None:
            self.filled = True
        elif self.held:
            self.fill()

    def fill(self, scanner=None):
        """Publish the scan of the source (or of `scanner`, finished) into the tables."""
        if scanner is None:
            source, self.source = self.source, None
            scanner = source if isinstance(source, MessageScanner) else self._scan(source)
        self.filled = True
        if scanner is not None:
            self._publish(scanner)

    def _scan(self, snapshot):
        scanner = MessageScanner(events=False)
        try:
            for chunk in _chunks(snapshot):
                scanner.feed(chunk)
        except OSError as exc:
            session = getattr(self.engine.current, "session", None)
            self.engine.log.error("spool read for mime.parts/uri.found: %s" % exc,
                                  getattr(session, "ident", None))
            return None
        scanner.finish()
        return scanner

    def _publish(self, scanner):
        # Tables a script never had are empty, and may be filled from inside a hook, where
        # lupa 2.8 misreads a master-state table (see smtpe/api/service.py, _spool_path):
        # read them only if a script held them, then we are at the dot, outside Lua.
        to_lua = self.engine.to_lua
        parts, found, existing = self.parts, self.found, self.held
        count = len(parts) if existing else 0
        for part in scanner.parts:
            count += 1
            parts[count] = to_lua(part)
        count = len(found) if existing else 0
        for uri in scanner.uris:      # unique by uri_raw, so their keys are too
            key = hashlib.md5(uri["uri_raw"]).hexdigest().encode("ascii")
            if existing and found[key] is not None:
                continue
            count += 1
            found[count] = key
            found[key] = to_lua(uri)

    def close(self):
        """The transaction's tables are replaced or the connection is gone: let go of the
        message (a snapshot in a file holds it open)."""
        source, self.source = self.source, None
        if hasattr(source, "close"):
            source.close()


def _chunks(snapshot):
    """The message of a Spool.snapshot() in CHUNK-sized pieces (the file is closed after)."""
    if isinstance(snapshot, (bytes, bytearray)):
        with memoryview(snapshot) as view:
            for start in range(0, len(view), CHUNK):
                yield view[start:start + CHUNK]
        return
    with snapshot:
        while True:
            block = snapshot.read(CHUNK)
            if not block:
                return
            yield block


def at_dot(ctx, scanner, spool):
    """The end of DATA, before hook.dot: `scanner` has streamed the message; it is the source
    if it scanned MIME (no spool), else the spool's snapshot is."""
    source = scanner
    if not scanner.mime:
        try:
            source = spool.snapshot()
        except OSError as exc:
            ctx.engine.log.error("spool snapshot for mime.parts/uri.found: %s" % exc,
                                 getattr(ctx.session, "ident", None))
            source = None
    ctx.message_tables.complete(source)


def install(api):
    serials = itertools.count(1)
    engine = api.engine

    def demand(serial):
        # the tables of the running connection's current transaction; an older transaction's
        # table, kept in a variable and read only now, stays as it was
        tables = getattr(api.current(), "message_tables", None)
        if tables is not None and tables.serial == serial:
            tables.demanded()

    factory = api.lua.execute(LAZY_TABLES, demand)
    engine.new_message_tables = lambda: MessageTables(engine, next(serials), factory)
