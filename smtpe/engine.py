"""The master Lua state and the running of hooks.

One LuaRuntime per worker loads the prelude, every `smtpe.api` namespace and the script.
Each connection gets a Context holding its own `client`, `mime` and `uri.found` tables; the
engine switches the globals to the right Context before resuming any of its hooks, so hooks
of many connections can interleave while they wait. A hook runs as a coroutine under a CPU
budget and the state's memory bound; a waiting API call yields a Wait (smtpe.waits) that the
engine starts and that resumes the coroutine when done. Knows nothing of sockets.
"""
import importlib
import os
import pkgutil

import lupa.lua51 as lua51

from . import api as api_package
from .waits import Wait

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")
if not os.path.isdir(LUA_DIR):  # source checkout: lua/ sits beside the package
    LUA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lua")

COUNT_HOOK_STEP = 10_000  # Lua instructions between two budget checks (about 0.1 ms)


class ScriptError(Exception):
    """The script could not be loaded or hook.init failed."""


class HookOutcome:
    """What a hook run produced: `values` (tuple of Lua results, empty when the hook is not
    defined) or `error` (message with traceback)."""
    __slots__ = ("values", "error", "defined")

    def __init__(self, values=(), error=None, defined=True):
        self.values = values
        self.error = error
        self.defined = defined


# What a step of a hook in Lua reports first (lua/prelude.lua has the same numbers).
STEP_DONE, STEP_WAIT, STEP_ERROR, STEP_UNDEFINED = 0, 1, 2, 3

NOT_DEFINED = HookOutcome(defined=False)
RETURNED_NOTHING = HookOutcome()   # (shared, never changed: most hooks return nothing)
_NO_TABLES = (None, None, None)
_DONE_WITH_NOTHING = (STEP_DONE,)


class Context:
    """Per-connection Lua state: the tables hooks see as globals, and namespace state.

    Namespace modules may keep their per-connection state as attributes (ctx.dns, ...) and
    register cleanups with at_hook_end / at_close.
    """

    def __init__(self, engine, session=None):
        self.engine = engine
        self.session = session
        lua = engine.lua
        self.client = lua.table()
        self.client[b"write"] = engine.client_write
        # client, mime and uri.found: what every step of a hook hands Lua as its globals
        self.tables = (self.client, None, None)
        self.message_tables = None  # what fills mime and uri_found (smtpe.api.mime)
        self.headers = []        # the editable header list of the current message (header.*)
        self.headers_dirty = False  # header.* changed it: rewrite the spool before forwarding
        self.body_offset = None     # offset of the body in the spool file, set at the dot
        self.run = None          # the HookRun in progress
        self.closed = False
        self._hook_end = []
        self._close = []
        self.new_transaction_tables()

    def new_transaction_tables(self):
        """Fresh `mime` and `uri.found` for a new transaction: empty until the dot, then the
        scan of the message (made when a hook first reads them: smtpe.api.mime, which
        installs engine.new_message_tables)."""
        if self.message_tables is not None:
            self.message_tables.close()
        tables = self.message_tables = self.engine.new_message_tables()
        self.tables = (self.client, tables.mime, tables.found)
        if self.run is not None:   # (every hook step hands Lua the tables: only a hook of this
            self.engine.enter(self)   # connection running now needs its globals set at once)

    def at_hook_end(self, callback):
        self._hook_end.append(callback)

    def at_close(self, callback):
        self._close.append(callback)

    def hook_ended(self):
        if not self._hook_end:     # (the usual case, after every hook)
            return
        callbacks, self._hook_end = self._hook_end, []
        for callback in callbacks:
            callback()

    def close(self):
        """The connection is gone: cancel a waiting hook, run namespace cleanups."""
        if self.closed:
            return
        self.closed = True
        run = self.run
        if run is not None:
            run.abandon()
        self.hook_ended()
        self.message_tables.close()
        callbacks, self._close = self._close, []
        for callback in callbacks:
            callback()
        if self.engine.current is self:
            self.engine.current = None


class HookRun(Wait):
    """A hook invocation that waits: its coroutine, resumed until it returns, fails or is
    abandoned. Engine.call_hook makes one when the hook's first step yields a Wait (most
    hooks finish in that step and need none); it is then itself the Wait its caller waits
    on (start(resume): resume(HookOutcome) once the hook is done)."""
    __slots__ = ("engine", "ctx", "name", "key", "resumer", "on_done", "wait",
                 "in_start", "early", "timer", "finished", "outcome")

    def __init__(self, engine, ctx, name, key, resumer, on_done):
        self.engine = engine
        self.ctx = ctx
        self.name = name
        self.key = key           # the hook's name as Lua knows it (bytes)
        self.resumer = resumer   # resumes the hook's coroutine (Engine.call_hook ran its first step)
        self.on_done = on_done
        self.wait = None
        self.in_start = False
        self.early = None
        self.timer = None
        self.finished = False
        self.outcome = None      # set when the hook finished before anyone waited on it

    def start(self, resume):
        self.on_done = resume

    def cancel(self):
        self.abandon()

    def step(self, args):
        """Resume the coroutine with `args` (the results of the Wait it yielded) until it
        finishes or waits again."""
        engine = self.engine
        while True:
            result = engine.lua_step(self.ctx, self.resumer, args)
            if result[0] != STEP_WAIT:
                self.finish(outcome=_finished(result))
                return
            args = self.wait_on(result[2] if len(result) > 2 else None)   # STEP_WAIT, resumer, wait
            if args is None:
                return

    def wait_on(self, wait):
        """The coroutine yielded `wait`: start it. -> its results when it completed at
        once (step goes on), else None (resume() steps later)."""
        if not hasattr(wait, "start"):
            self.finish("hook %s yielded outside a waiting API call" % self.name)
            return None
        self.wait = wait
        self.in_start = True
        self.early = None
        try:
            wait.start(self.resume)
        except Exception as exc:  # a provider bug must not kill the worker
            self.in_start = False
            self.wait = None
            self.finish("%s: %s" % (type(exc).__name__, exc))
            return None
        self.in_start = False
        if self.early is None:
            engine = self.engine
            if self.timer is None and engine.wall_budget:
                self.timer = engine.loop.call_later(engine.wall_budget, self.timed_out)
            return None
        args, self.early = self.early, None
        return args

    def resume(self, *values):
        if self.finished or self.wait is None:
            return
        self.wait = None
        if self.in_start:
            self.early = values
        else:
            self.step(values)

    def timed_out(self):
        self.timer = None
        if self.wait is not None:
            wait, self.wait = self.wait, None
            wait.cancel()
            self.finish("hook %s exceeded its time limit of %ss" % (self.name, self.engine.wall_budget))

    def abandon(self):
        """The connection closed while this hook waited: cancel the wait, drop the coroutine."""
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
        if self.wait is not None:
            wait, self.wait = self.wait, None
            wait.cancel()
        self.resumer = None

    def finish(self, error=None, outcome=None):
        """The hook is over: with `outcome`, or failed with `error`."""
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.resumer = None
        outcome = outcome or HookOutcome((), error)
        if self.ctx is not None:
            self.ctx.run = None
        self.engine.after_hook(self.ctx, outcome)
        if self.on_done is None:
            self.outcome = outcome
        else:
            self.on_done(outcome)


def _finished(result):
    """A Lua step's result that is not "wait" -> the HookOutcome."""
    status = result[0]
    if status == STEP_DONE:
        return HookOutcome(result[1:]) if len(result) > 1 else RETURNED_NOTHING
    if status == STEP_UNDEFINED:     # removed from the hook table since
        return NOT_DEFINED
    return HookOutcome((), _text(result[1]))


def _plain(engine, item):
    """A value of a table Engine.to_lua builds: scalars as they are (the usual case)."""
    if type(item) in (bytes, int, float, bool) or item is None:
        return item
    return engine.to_lua(item)


def _public_attributes_only(obj, name, is_setting):
    """Lua may call the functions and public methods we hand it, nothing more: no dunder
    walk to Python internals (fn.__globals__), no private state, no assignments."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if is_setting or not isinstance(name, str) or name.startswith("_"):
        raise AttributeError("not accessible from Lua: %r" % (name,))
    return name


def _host_name():
    """This host's name as the banner, QUIT reply and outgoing EHLO use it."""
    import socket
    name = socket.getfqdn()
    return name if name and name != "localhost" else socket.gethostname() or "localhost.localhost"


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Api:
    """What namespace modules (smtpe.api.*) get to build their Lua tables."""

    def __init__(self, engine):
        self.engine = engine
        self.lua = engine.lua
        self.globals = engine.lua.globals()
        self.options = engine.options
        self.loop = engine.loop
        self.log = engine.log

    def namespace(self, name):
        """The global table `name`, created if missing."""
        key = name.encode()
        table = self.globals[key]
        if table is None:
            table = self.lua.table()
            self.globals[key] = table
        return table

    def table(self, *items, **fields):
        """A Lua table; keyword names become (byte) string keys."""
        table = self.lua.table(*items)
        for name, value in fields.items():
            table[name.encode()] = value
        return table

    def table_from(self, value):
        """A Lua table from nested Python dicts/lists (keys given as str become bytes)."""
        return self.engine.to_lua(value)

    def current(self):
        """The Context of the hook now running (None in hook.init or outside hooks)."""
        return self.engine.current

    def waiting(self, table, name, function):
        """Install `function` (returning a smtpe.waits.Wait) as a waiting call table.name."""
        table[name.encode()] = self.engine.make_waiting(function)
        return table[name.encode()]


class Engine:
    def __init__(self, options, loop, log, script=None, source=None):
        self.options = options
        self.loop = loop
        self.log = log
        self.script = script if script is not None else options.get("script")
        self.source = source  # the script's bytes as read and checked earlier; None: read the file
        self.cpu_budget = float(options.get("lua-hook-cpu"))
        self.wall_budget = float(options.get("lua-hook-timeout"))
        max_memory = int(options.get("lua-max-memory")) * 1024 * 1024
        self.memory_soft_kb = max_memory * 0.9 / 1024 if max_memory else None
        self.lua = lua51.LuaRuntime(encoding=None, unpack_returned_tuples=True,
                                    register_eval=False, register_builtins=False,
                                    attribute_filter=_public_attributes_only,
                                    max_memory=max_memory or None)
        self.current = None
        self.host_name = options.host_name if hasattr(options, "host_name") else _host_name()
        g = self.lua.globals()
        self.client_write = None
        self.api = Api(self)
        self._load_prelude()
        g[b"__engine_configure"](COUNT_HOOK_STEP, self.memory_soft_kb, self.cpu_budget)
        self._spawn = g[b"__engine_spawn"]
        self._run = g[b"__engine_run"]
        self._waiting = g[b"__engine_waiting"]
        self._lookup = g[b"__engine_hook"]
        self._enter = g[b"__engine_enter"]
        g[b"__engine_touch"] = self.spool_path_used
        g[b"__engine_touch_command"] = self.spool_path_in_command
        g[b"__engine_guard_file_names"]()
        self._gc = g[b"__engine_gc"]
        self._install_namespaces()
        self._load_file(self.script)
        # Hooks the script defines; a name missing here is certainly undefined (additions
        # are reported by the hook table's __newindex), so most hooks cost no Lua call.
        self.defined = set(g[b"__engine_watch_hooks"](self._hook_added).values())

    # -- loading -------------------------------------------------------------------------
    def _load_prelude(self):
        path = os.path.join(LUA_DIR, "prelude.lua")
        with open(path, "rb") as handle:
            self.lua.execute(handle.read())

    def _load_file(self, path):
        """Load and run the script; errors name the file and line (Lua's own message)."""
        if self.source is not None:
            return self._load_source(path, self.source)
        if not path or not os.path.isfile(path):
            raise ScriptError("%s: no such script file" % path)
        try:
            self.lua.globals()[b"__engine_load"](os.fsencode(path))
        except lua51.LuaError as exc:
            raise ScriptError(_text(exc.args[0] if exc.args else exc).splitlines()[0]) from None

    def _load_source(self, path, source):
        """The script from bytes read before (a worker runs what the supervisor checked, not
        whatever the file holds when the worker starts), named as the file so that errors
        still name file and line."""
        if source.startswith(b"#"):  # loadfile skips a first #! line; keep the line numbers
            source = source[source.find(b"\n"):] if b"\n" in source else b""
        try:
            loaded = self.lua.globals()[b"loadstring"](source, b"@" + os.fsencode(path))
            if isinstance(loaded, tuple):  # nil, message
                raise ScriptError(_text(loaded[1]).splitlines()[0])
            loaded()
        except lua51.LuaError as exc:
            raise ScriptError(_text(exc.args[0] if exc.args else exc).splitlines()[0]) from None

    def _install_namespaces(self):
        for info in pkgutil.iter_modules(api_package.__path__):
            module = importlib.import_module("%s.%s" % (api_package.__name__, info.name))
            install = getattr(module, "install", None)
            if install is not None:
                install(self.api)

    def _hook_added(self, name):
        if isinstance(name, bytes):
            self.defined.add(name)

    def make_waiting(self, function):
        return self._waiting(function)

    def spool_path_used(self, name, read_only=False):
        """Something is about to use file `name` (bytes): if it is the running connection's
        spool file and the message is still in memory, write the file now. A `read_only` user
        (our own scanners and senders, which never change the file) leaves the memory copy
        the message (smtpe.spool.Spool.materialise)."""
        self._write_spool_if(lambda path: name == path, read_only)

    def spool_path_in_command(self, command):
        """A shell command is about to run: the same, if it names the spool file."""
        self._write_spool_if(lambda path: path in command)

    def _write_spool_if(self, names_it, read_only=False):
        session = getattr(self.current, "session", None)
        spool = getattr(session, "spool", None)
        if spool is None or spool.on_disk or not names_it(spool.path_bytes):
            return
        try:
            spool.materialise(keep_memory=read_only)
        except OSError as exc:  # the caller's open fails in turn, with its own error
            self.log.error("spool %s: %s" % (spool.path, exc.strerror), session.ident)

    # -- contexts ------------------------------------------------------------------------
    def new_context(self, session=None):
        return Context(self, session)

    def enter(self, ctx):
        if ctx is None:
            self._enter(None, None, None)
        else:
            self._enter(*ctx.tables)
        self.current = ctx

    def to_lua(self, value):
        """Nested Python dicts/lists/tuples -> Lua tables (str keys and values become bytes).
        Each table is made by one table_from call: lupa then fills it in C, a setitem per
        key from Python costs several times more (a result table has ten or more keys)."""
        if isinstance(value, dict):
            return self.lua.table_from({key.encode() if type(key) is str else key: _plain(self, item)
                                        for key, item in value.items()})
        if isinstance(value, (list, tuple)):
            return self.lua.table_from([_plain(self, item) for item in value])
        if isinstance(value, str):
            return value.encode("utf-8")
        return value

    def collect_garbage(self):
        try:
            self._gc()
        except lua51.LuaError:
            pass

    # -- hooks ---------------------------------------------------------------------------
    def has_hook(self, name):
        key = name.encode()
        return key in self.defined and self._lookup(key) is not None

    def call_hook(self, ctx, name, args):
        """Run hook.<name>(*args) for ctx -> its HookOutcome when it finished at once (most
        hooks do), else the HookRun to wait on."""
        key = name.encode()
        if key not in self.defined:
            return NOT_DEFINED
        # Most hooks finish in their first step: no HookRun for them, only for one that waits.
        result = self.lua_step(ctx, self._run, (key, *args))
        if result == _DONE_WITH_NOTHING and (ctx is None or not ctx._hook_end):
            return RETURNED_NOTHING   # the usual hook: returned nothing, nothing to clean up
        if result[0] != STEP_WAIT:
            outcome = _finished(result)
            self.after_hook(ctx, outcome)
            return outcome
        run = HookRun(self, ctx, name, key, result[1], None)   # STEP_WAIT, resumer, wait
        if ctx is not None:
            ctx.run = run
        args = run.wait_on(result[2] if len(result) > 2 else None)
        if args is not None:
            run.step(args)
        return run.outcome or run

    def after_hook(self, ctx, outcome):
        """A hook ended: free what a memory-bound failure left, run ctx's hook-end cleanups."""
        if outcome.error is not None and "not enough memory" in outcome.error:
            self.collect_garbage()
        if ctx is not None and ctx._hook_end:
            ctx.hook_ended()

    def lua_step(self, ctx, function, args):
        """A step of a hook: function(client, mime, uri_found, *args) in Lua (__engine_run for
        the first, the hook's resumer for the others), with ctx's tables -> (STEP_DONE,
        values...), (STEP_WAIT, resumer, wait), (STEP_ERROR, text) or (STEP_UNDEFINED,)."""
        self.current = ctx
        try:
            result = function(*(ctx.tables if ctx is not None else _NO_TABLES), *args)
        except lua51.LuaError as exc:  # e.g. out of memory while building the traceback
            return (STEP_ERROR, str(exc))
        return result if type(result) is tuple else (result,)  # (a lone value comes unwrapped)

    def run_hook(self, ctx, name, args, on_done):
        """Run hook.<name>(*args) for ctx; on_done(HookOutcome) once, possibly at once."""
        result = self.call_hook(ctx, name, args)
        if isinstance(result, HookOutcome):
            on_done(result)
        else:
            result.start(on_done)

    def run_source(self, ctx, source, on_done):
        """+test mode: run a line of Lua like a hook (it may wait); a syntax error is
        reported as the outcome's error."""
        try:
            function = self.lua.globals()[b"__engine_compile"](source)
        except lua51.LuaError as exc:
            on_done(HookOutcome(error=_text(exc.args[0] if exc.args else exc)))
            return
        run = HookRun(self, ctx, "test", None, self._spawn(function), on_done)
        ctx.run = run
        run.step(())

    def run_init(self):
        """hook.init at start-up, run to completion on the loop; raises ScriptError."""
        outcome = []
        self.run_hook(None, "init", (), outcome.append)
        while not outcome:
            self.loop.run_once(0.05)
        if outcome[0].error:
            raise ScriptError("hook.init: %s" % outcome[0].error)
