-- The Lua half of the engine: runs once in the master state after the API namespaces are
-- installed and before the user's script. Names starting with __engine_ are private.

hook = hook or {}
uri = uri or {}

local create, resume, yield, status, running =
	coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running
local sethook, traceback, clock = debug.sethook, debug.traceback, os.clock
local type, tostring, error, loadfile, gcinfo = type, tostring, error, loadfile, collectgarbage

local current	-- the coroutine of the hook now running

local count_step, memory_kb, cpu_budget = 10000, nil, 10

-- Set once by the engine: Lua instructions between two budget checks, the memory bound in
-- KB (the state's hard limit would also stop a runaway, but Lua 5.1 collects garbage ever
-- more often as it nears that limit, so a runaway is stopped earlier, cheaply, here), and
-- the CPU seconds a hook may use.
function __engine_configure(step, kb, budget)
	count_step, memory_kb, cpu_budget = step, kb, budget
end

-- Hooks run in worker coroutines that are reused: a new coroutine with its count hook and
-- closures for every call cost about as much as a short hook itself. A worker runs one hook
-- function after another; between two it is parked, yielding DONE (a marker no script can
-- yield) with the results. A hook that fails kills its worker (Lua 5.1 cannot resume a
-- coroutine after an error), and one abandoned while waiting is simply dropped.
--
-- Every step of a hook reports to Python by a number first (a number crosses into Python
-- without making an object, a string does not): STEP_DONE, results... | STEP_WAIT, wait |
-- STEP_ERROR, traceback | STEP_UNDEFINED. The engine (smtpe/engine.py) has the same numbers.
local STEP_DONE, STEP_WAIT, STEP_ERROR, STEP_UNDEFINED = 0, 1, 2, 3
local DONE = {}
local idle, idle_count, IDLE_MAX = {}, 0, 32

-- uri.found of the hook now running: the mime namespace (smtpe/api/mime.py) reads it from
-- here, so that a resume sets it with a plain store, not through uri's __newindex.
local uri_state = {}
__engine_uri_state = uri_state

local function run_hooks(fn, ...)
	return run_hooks(yield(DONE, fn(...)))
end

-- A worker: a table {co, remaining, last, resume}. The budget (CPU seconds, `remaining`)
-- spans all resumes of one hook. worker.resume(client, mime, uri_found, ...) makes each step
-- (the first one passes the hook function first) -> STEP_DONE, results... | STEP_ERROR,
-- traceback | STEP_WAIT, worker.resume, wait (the engine keeps the resumer of a hook that
-- waits). The three tables are the
-- connection's; every resume sets them as globals, since other connections' hooks ran in
-- between. The CPU clock is read only in the count hook (a clock read is a system call,
-- dearer than a short hook): each resume is timed from its first check, so up to count_step
-- instructions per resume go uncounted.
local function new_worker()
	local co = create(run_hooks)
	local worker = { co = co, remaining = 0, last = nil }
	sethook(co, function()
		local now = clock()
		local last = worker.last
		if last then
			local remaining = worker.remaining - (now - last)
			worker.remaining = remaining
			if remaining <= 0 then
				error("hook exceeded its CPU time budget", 0)
			end
		end
		worker.last = now
		if memory_kb and gcinfo("count") > memory_kb then
			error("hook exceeded the Lua memory bound: not enough memory", 0)
		end
	end, "", count_step)
	local resume_worker
	local function settle(ok, first, ...)
		if not ok then
			return STEP_ERROR, traceback(co, tostring(first))
		end
		if first == DONE then
			if idle_count < IDLE_MAX then
				idle_count = idle_count + 1
				idle[idle_count] = worker
			end
			return STEP_DONE, ...
		end
		return STEP_WAIT, resume_worker, first, ...
	end
	function resume_worker(c, m, f, ...)
		client, mime = c, m
		uri_state.found = f
		worker.last = nil
		current = co
		return settle(resume(co, ...))
	end
	worker.resume = resume_worker
	return worker
end

local function take_worker()
	local worker = idle[idle_count]
	if worker then
		idle[idle_count] = nil
		idle_count = idle_count - 1
	else
		worker = new_worker()
	end
	worker.remaining = cpu_budget
	return worker
end

-- A resumer for function fn run like a hook (+test mode): its first call starts fn.
function __engine_spawn(fn)
	local worker, started = take_worker(), false
	local resume_worker = worker.resume
	return function(c, m, f, ...)
		if started then
			return resume_worker(c, m, f, ...)
		end
		started = true
		return resume_worker(c, m, f, fn, ...)
	end
end

-- A hook's first step in one call from Python (a call across lupa costs more than all the
-- Lua here); like every step, it gets the connection's three tables first: -> STEP_UNDEFINED | STEP_DONE, results... | STEP_ERROR, traceback |
-- STEP_WAIT, resumer, wait.
function __engine_run(c, m, f, name, ...)
	local fn = hook[name]
	if type(fn) ~= "function" then
		return STEP_UNDEFINED
	end
	return take_worker().resume(c, m, f, fn, ...)
end

-- A waiting API call: the Python function returns a Wait, which the hook's own coroutine
-- yields to the engine; the values the wait resumes with are the call's results.
function __engine_waiting(fn)
	return function(...)
		if current == nil or running() ~= current then
			error("a waiting call must be made from the hook itself, not from a coroutine of the script", 2)
		end
		return yield(fn(...))
	end
end

function __engine_hook(name)
	local fn = hook[name]
	if type(fn) == "function" then
		return fn
	end
end

-- After the script is loaded: tell the engine whenever a hook is added later (e.g. from
-- hook.init or another hook), so it can keep its set of defined hooks without asking Lua.
function __engine_watch_hooks(changed)
	local names = {}
	for name, fn in pairs(hook) do
		if type(fn) == "function" then
			names[#names + 1] = name
		end
	end
	setmetatable(hook, { __newindex = function(t, k, v)
		rawset(t, k, v)
		changed(k)
	end })
	return names
end

-- A message may still be in memory when a hook gets its spool path (smtpe/spool.py): every
-- standard function that takes a file name, or a command that may name the file, first has
-- the engine write the file out (__engine_touch*, set by the engine; a no-op for any other
-- name).
local function before_use_of_name(fn)
	return function(name, ...)
		if type(name) == "string" then
			__engine_touch(name)
		end
		return fn(name, ...)
	end
end

local function before_command(fn)
	return function(command, ...)
		if type(command) == "string" then
			__engine_touch_command(command)
		end
		return fn(command, ...)
	end
end

function __engine_guard_file_names()
	for _, name in ipairs({ "open", "lines", "input", "output" }) do
		if io[name] then io[name] = before_use_of_name(io[name]) end
	end
	for _, name in ipairs({ "remove", "rename" }) do
		if os[name] then os[name] = before_use_of_name(os[name]) end
	end
	if os.execute then os.execute = before_command(os.execute) end
	if io.popen then io.popen = before_command(io.popen) end
	if loadfile then loadfile = before_use_of_name(loadfile) end
	if dofile then dofile = before_use_of_name(dofile) end
end

function __engine_enter(c, m, f)
	client, mime = c, m
	uri_state.found = f
end

function __engine_load(path)
	local chunk, err = loadfile(path)
	if chunk == nil then
		error(err, 0)
	end
	chunk()
end

-- +test mode: a line of Lua typed at the prompt, compiled as a function.
function __engine_compile(source)
	local chunk, err = loadstring(source, "=stdin")
	if chunk == nil then
		error(err, 0)
	end
	return chunk
end

function __engine_gc()
	collectgarbage()
end
