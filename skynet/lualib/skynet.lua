-- skynet-rs: the Lua service framework (contract: core.md §9).
--
-- Every incoming message runs in a coroutine taken from a pool. A coroutine
-- blocks only by yielding "SUSPEND" to the dispatcher (call, sleep, wait, ...).
-- Bookkeeping:
--   session_id_coroutine[session] = co | "BREAK"   coroutines waiting for a reply
--   session_coroutine_id[co] / _address[co]        the request a coroutine owes
--   watching_session[session] = service            outstanding calls
--   sleep_session[token] = session                 sleepers / waiters
--   plus FIFO queues for wakeups, call errors and forks.
--
-- Every service loads this file, and its compiled functions are per-state memory (stock
-- Lua cannot share prototypes between states), so it holds only the message path and
-- what an ordinary service uses. The rest is loaded on the first access to a field this
-- table lacks: skynet/ext.lua (response, exit, time, ...), then skynet/ext_debug.lua
-- (tracing, task lists, killthread, request); the debug protocol (skynet/debug.lua) on
-- the first debug message.

local c = require "skynet.core"
-- Our core has a direct timeout(ti) -> session; upstream-style cores only TIMEOUT.
local c_timeout = c.timeout or function(ti) return c.intcommand("TIMEOUT", ti) end

local tostring = tostring
local type = type
local error = error
local pcall = pcall
local format = string.format
local traceback = debug.traceback

local co_create = coroutine.create
local co_resume = coroutine.resume
local co_yield = coroutine.yield
local co_running = coroutine.running
local co_close = coroutine.close

local c_send = c.send
local c_trace = c.trace

local skynet = {
	PTYPE_TEXT = 0,
	PTYPE_RESPONSE = 1,
	PTYPE_MULTICAST = 2,
	PTYPE_CLIENT = 3,
	PTYPE_SYSTEM = 4,
	PTYPE_HARBOR = 5,
	PTYPE_SOCKET = 6,
	PTYPE_ERROR = 7,
	PTYPE_QUEUE = 8,	-- deprecated
	PTYPE_DEBUG = 9,
	PTYPE_LUA = 10,
	PTYPE_SNAX = 11,
	PTYPE_TRACE = 12,
}

local PTYPE_RESPONSE = 1
local PTYPE_ERROR = 7

local proto = {}

local session_id_coroutine = {}
local session_coroutine_id = {}
local session_coroutine_address = {}
local session_coroutine_tracetag = {}
local unresponse = {}		-- response closure -> requester address
local watching_session = {}
local sleep_session = {}

local wake_q, wake_h, wake_t = {}, 1, 0
local err_q, err_h, err_t = {}, 1, 0
-- session -> reason text of a PTYPE_ERROR that carried one (ours: cluster senders say
-- why a remote call failed); upstream's errors are empty and give plain "call failed"
local err_reason = {}
local fork_q, fork_h, fork_t = {}, 1, 0

local running_thread = nil
local init_thread = nil
local info_func = nil

-- tracing state; the hot paths only test the two counters (see skynet/ext_debug.lua)
local ntraced = 0		-- coroutines carrying a trace tag (or a forced-off marker)
local trace_source = {}	-- source -> tag announced by a PTYPE_TRACE message
local ntrace_source = 0
local timeout_traceback = nil

-- nil: the built-in handlers of skynet/ext.lua
local unknown_request, unknown_response

local ext, extdbg	-- skynet/ext.lua, skynet/ext_debug.lua once loaded
local load_ext, load_extdbg

----------------------------------------------------------------------------------------
-- addresses, environment, time

local self_handle = c.addresscommand "REG"

function skynet.self()
	return self_handle
end

function skynet.address(addr)
	if type(addr) == "number" then
		return format(":%08x", addr)
	end
	return tostring(addr)
end

skynet.now = c.now
skynet.hpc = c.hpc

function skynet.getenv(key)
	return (c.command("GETENV", key))
end

skynet.error = c.error
skynet.tracelog = c_trace
skynet.pack = c.pack
skynet.packstring = c.packstring
skynet.unpack = c.unpack
skynet.tostring = c.tostring
skynet.trash = c.trash
skynet.genid = c.genid

----------------------------------------------------------------------------------------
-- coroutine pool

-- Finished coroutines wait here for reuse, at most POOL_MAX of them: a burst of
-- thousands of concurrent requests (one per connection, say) must not pin that many
-- coroutine stacks for the life of the service. Past the cap a finished coroutine
-- simply ends and is collected.
local POOL_MAX <const> = 128
local pool, npool = {}, 0

local function new_thread()
	local co, body
	-- the job finished: settle its bookkeeping and wait in the pool for the next one
	local function park(f)
		local session = session_coroutine_id[co]
		if session ~= nil then
			if session ~= 0 then
				(ext or load_ext()).forgot_response(co, session, f)
			end
			session_coroutine_id[co] = nil
		end
		session_coroutine_address[co] = nil
		if ntraced > 0 then
			extdbg.trace_end(co)
		end
		f = nil
		if npool >= POOL_MAX then
			return
		end
		npool = npool + 1
		pool[npool] = co
		return body(co_yield "SUSPEND")
	end
	body = function(f, ...)
		f(...)
		return park(f)
	end
	co = co_create(body)
	return co
end

local function co_get()
	local n = npool
	if n > 0 then
		local co = pool[n]
		pool[n] = nil
		npool = n - 1
		return co
	end
	return new_thread()
end

-- Entry of a coroutine created ahead of time (fork, timeout): it parks at once and
-- runs f when resumed by the dispatcher.
local function deferred(f, ...)
	co_yield()
	return f(...)
end

local function timer_entry(f, co)
	co_yield()
	if timeout_traceback then
		timeout_traceback[co] = nil
	end
	return f()
end

----------------------------------------------------------------------------------------
-- the dispatcher

local suspend

local function dispatch_error_queue()
	while err_h <= err_t do
		local session = err_q[err_h]
		err_q[err_h] = nil
		err_h = err_h + 1
		local reason = err_reason[session]
		if reason then
			err_reason[session] = nil
		end
		local co = session_id_coroutine[session]
		if co ~= nil and co ~= "BREAK" then
			session_id_coroutine[session] = nil
			running_thread = co
			return suspend(co, co_resume(co, false, reason, nil, session))
		end
	end
	err_h, err_t = 1, 0
end

local function dispatch_wakeup()
	while wake_h <= wake_t do
		local token = wake_q[wake_h]
		wake_q[wake_h] = nil
		wake_h = wake_h + 1
		local session = sleep_session[token]
		if session then
			local co = session_id_coroutine[session]
			if type(co) == "thread" then
				session_id_coroutine[session] = "BREAK"
				if ntraced > 0 then
					extdbg.trace_event(co, "resume")
				end
				running_thread = co
				return suspend(co, co_resume(co, false, "BREAK", nil, session))
			end
		end
	end
	wake_h, wake_t = 1, 0
	return dispatch_error_queue()
end

-- Errors raised while dispatching one message (handlers, forks, unknown sessions)
-- are collected here and raised together once the message is fully processed, so
-- the common path needs no pcall.
local dispatch_error = nil

local function report(msg)
	if dispatch_error then
		dispatch_error = dispatch_error .. "\n" .. msg
	else
		dispatch_error = msg
	end
end

function suspend(co, ok, cmd)
	if ok then
		-- nil: the coroutine ended (the pool was full)
		if cmd == "SUSPEND" or cmd == nil then
			if wake_h <= wake_t or err_h <= err_t then
				return dispatch_wakeup()
			end
			return
		elseif cmd == "QUIT" then
			-- skynet.exit(): the service is gone
			co_close(co)
			return
		elseif cmd == "USER" then
			report("Call skynet.coroutine.yield out of skynet.coroutine.resume\n" .. traceback(co))
		else
			report("Unknown command : " .. tostring(cmd) .. "\n" .. traceback(co))
		end
		return dispatch_wakeup()
	end
	-- the coroutine raised an error
	local session = session_coroutine_id[co]
	if session ~= nil then
		if session ~= 0 then
			c_send(session_coroutine_address[co], PTYPE_ERROR, session, "")
		end
		session_coroutine_id[co] = nil
	end
	session_coroutine_address[co] = nil
	if ntraced > 0 then
		extdbg.trace_error(co)
	end
	report(traceback(co, tostring(cmd)))
	co_close(co)
	return dispatch_wakeup()
end

-- co: a pooled coroutine, or nil to take one here
local function dispatch_request(co, f, session, source, ...)
	if not co then
		local n = npool
		if n > 0 then
			co = pool[n]
			pool[n] = nil
			npool = n - 1
		else
			co = new_thread()
		end
	end
	session_coroutine_id[co] = session
	session_coroutine_address[co] = source
	running_thread = co
	return suspend(co, co_resume(co, f, session, source, ...))
end

local function run_forks()
	while fork_h <= fork_t do
		local co = fork_q[fork_h]
		fork_q[fork_h] = nil
		fork_h = fork_h + 1
		if co then
			running_thread = co
			suspend(co, co_resume(co))
		end
	end
	fork_h, fork_t = 1, 0
end

local function dispatch_unknown(prototype, msg, sz, session, source, p)
	if prototype == PTYPE_RESPONSE then
		local ok, err = pcall(unknown_response or (ext or load_ext()).unknown_response,
			session, source, msg, sz)
		if not ok then
			report(tostring(err))
		end
	elseif prototype == 12 then	-- PTYPE_TRACE: the tag of the next request from source
		if trace_source[source] == nil then
			ntrace_source = ntrace_source + 1
		end
		trace_source[source] = c.tostring(msg, sz)
	elseif session ~= 0 then
		c_send(source, PTYPE_ERROR, session, "")
	else
		local ok, err = pcall(unknown_request or (ext or load_ext()).unknown_request,
			session, source, msg, sz, p and p.name or prototype)
		if not ok then
			report(tostring(err))
		end
	end
end

function skynet.dispatch_message(prototype, msg, sz, session, source)
	if prototype == PTYPE_RESPONSE then
		local co = session_id_coroutine[session]
		if co == "BREAK" then
			session_id_coroutine[session] = nil
		elseif co == nil then
			dispatch_unknown(prototype, msg, sz, session, source)
		else
			session_id_coroutine[session] = nil
			if ntraced > 0 then
				extdbg.trace_event(co, "resume")
			end
			running_thread = co
			suspend(co, co_resume(co, true, msg, sz, session))
		end
	else
		local p = proto[prototype]
		local f = p and p.dispatch
		if not f then
			dispatch_unknown(prototype, msg, sz, session, source, p)
		elseif p.trace == nil and ntrace_source == 0 then
			dispatch_request(nil, f, session, source, p.unpack(msg, sz))
		else
			local co = co_get()
			;(extdbg or load_extdbg()).trace_request(co, p, source)
			dispatch_request(co, f, session, source, p.unpack(msg, sz))
		end
	end
	if fork_h <= fork_t then
		run_forks()
	end
	local err = dispatch_error
	if err then
		dispatch_error = nil
		error(err, 0)
	end
end

----------------------------------------------------------------------------------------
-- protocols

function skynet.register_protocol(class)
	local name = class.name
	local id = class.id
	assert(type(name) == "string" and math.type(id) == "integer" and id >= 0 and id <= 255,
		"invalid protocol")
	assert(proto[name] == nil and proto[id] == nil, "protocol already registered")
	proto[name] = class
	proto[id] = class
end

function skynet.dispatch(typename, func)
	local p = proto[typename]
	if func then
		assert(p, "unknown protocol")
		local prev = p.dispatch
		p.dispatch = func
		return prev
	end
	return p and p.dispatch
end

----------------------------------------------------------------------------------------
-- send / call / reply

function skynet.send(addr, typename, ...)
	local p = proto[typename]
	return c_send(addr, p.id, 0, p.pack(...))
end

function skynet.rawsend(addr, typename, msg, sz)
	local p = proto[typename]
	return c_send(addr, p.id, 0, msg, sz)
end

function skynet.redirect(dest, source, typename, ...)
	return c.redirect(dest, source, proto[typename].id, ...)
end

function skynet.call(addr, typename, ...)
	if ntraced > 0 then
		extdbg.trace_call(running_thread, addr)
	end
	local p = proto[typename]
	local session = c_send(addr, p.id, nil, p.pack(...))
	if not session then
		error("call to invalid address " .. skynet.address(addr))
	end
	watching_session[session] = addr
	session_id_coroutine[session] = running_thread
	local ok, msg, sz = co_yield "SUSPEND"
	watching_session[session] = nil
	if not ok then
		if msg then
			error("call failed: " .. msg, 0)
		end
		error "call failed"
	end
	return p.unpack(msg, sz)
end

function skynet.ret(msg, sz)
	msg = msg or ""
	local co = running_thread
	local session = session_coroutine_id[co]
	if session == nil then
		error "No session"
	end
	session_coroutine_id[co] = nil
	if session == 0 then
		if sz ~= nil then
			c.trash(msg, sz)
		end
		return false
	end
	local source = session_coroutine_address[co]
	if ntraced > 0 then
		extdbg.trace_event(co, "response")
	end
	local ret = c_send(source, PTYPE_RESPONSE, session, msg, sz)
	if ret then
		return true
	elseif ret == false then
		-- too large: report an error instead
		c_send(source, PTYPE_ERROR, session, "")
	end
	return false
end

function skynet.retpack(...)
	return skynet.ret(c.pack(...))
end

function skynet.ignoreret()
	session_coroutine_id[running_thread] = nil
end

----------------------------------------------------------------------------------------
-- error protocol: a call failed, or a service we talk to is gone

local function service_down(session, source)
	if session == 0 then
		for resp, addr in pairs(unresponse) do
			if addr == source then
				unresponse[resp] = nil
			end
		end
		for s, srv in pairs(watching_session) do
			if srv == source then
				err_t = err_t + 1
				err_q[err_t] = s
			end
		end
	elseif watching_session[session] then
		err_t = err_t + 1
		err_q[err_t] = session
	end
end

----------------------------------------------------------------------------------------
-- time, fork, sleep, wait, wakeup

function skynet.fork(func, ...)
	local co = co_get()
	co_resume(co, deferred, func, ...)
	fork_t = fork_t + 1
	fork_q[fork_t] = co
	return co
end

function skynet.timeout(ti, func)
	local session = c_timeout(ti)
	assert(session)
	local co = co_get()
	co_resume(co, timer_entry, func, co)
	if timeout_traceback then
		timeout_traceback[co] = traceback(format("TIMER %d+%d : ", c.now(), ti), 2)
	end
	session_id_coroutine[session] = co
	return co
end

function skynet.sleep(ti, token)
	token = token or co_running()
	if sleep_session[token] ~= nil then
		error "token duplicative"
	end
	local session = c_timeout(ti)
	assert(session)
	if ntraced > 0 then
		extdbg.trace_sleep(running_thread)
	end
	session_id_coroutine[session] = running_thread
	sleep_session[token] = session
	local ok, ret = co_yield "SUSPEND"
	sleep_session[token] = nil
	if ok then
		return
	end
	if ret == "BREAK" then
		return "BREAK"
	end
	error(ret)
end

function skynet.yield()
	return skynet.sleep(0)
end

function skynet.wait(token)
	token = token or co_running()
	if sleep_session[token] ~= nil then
		error "token duplicative"
	end
	local session = c.genid()
	if ntraced > 0 then
		extdbg.trace_sleep(running_thread)
	end
	session_id_coroutine[session] = running_thread
	sleep_session[token] = session
	co_yield "SUSPEND"
	sleep_session[token] = nil
	session_id_coroutine[session] = nil
end

function skynet.wakeup(token)
	if sleep_session[token] then
		wake_t = wake_t + 1
		wake_q[wake_t] = token
		return true
	end
end

----------------------------------------------------------------------------------------
-- service lifecycle

-- skynet.init(f) from the main chunk queues f to run before the start function; from
-- a module being loaded by skynet.require, after that module's body; otherwise (the
-- service has started) f runs at once (2016 semantics).
local main_inits = {}
local initialized = false

function skynet.init(f)
	assert(type(f) == "function", "skynet.init needs a function")
	local co, ismain = co_running()
	if not ismain then
		local r = package.loaded["skynet.require"]
		if r and r.add_init(co, f) then
			return
		end
	end
	if initialized then
		f()
	else
		main_inits[#main_inits + 1] = f
	end
end

-- Run the init functions queued by the main chunk (once; a no-op afterwards).
local function init_all()
	local inits = main_inits
	local i = 1
	while inits[i] do
		local f = inits[i]
		inits[i] = false
		i = i + 1
		f()
	end
	main_inits = {}
	initialized = true
end

function skynet.init_service(start)
	local ok, err = xpcall(function()
		init_all()
		start()
	end, traceback)
	if not ok then
		c.error("init service failed: " .. tostring(err))
		skynet.send(".launcher", "lua", "ERROR")
		skynet.exit()
	else
		skynet.send(".launcher", "lua", "LAUNCHOK")
	end
end

function skynet.start(start_func)
	c.callback(skynet.dispatch_message)
	init_thread = skynet.timeout(0, function()
		skynet.init_service(start_func)
		init_thread = nil
	end)
end

function skynet.newservice(name, ...)
	return skynet.call(".launcher", "lua", "LAUNCH", "snlua", name, ...)
end

function skynet.uniqueservice(global, ...)
	if global == true then
		return assert(skynet.call(".service", "lua", "GLAUNCH", ...))
	end
	return assert(skynet.call(".service", "lua", "LAUNCH", global, ...))
end

function skynet.queryservice(global, ...)
	if global == true then
		return assert(skynet.call(".service", "lua", "GQUERY", ...))
	end
	return assert(skynet.call(".service", "lua", "QUERY", global, ...))
end

-- require for the framework's own parts: their bodies never block, so they need not
-- go through the yield-safe require (skynet/require.lua) when loaded from a handler
local function load_module(name)
	local loaded = package.loaded
	local m = loaded[name]
	if m == nil then
		for _, searcher in ipairs(package.searchers) do
			local loader, extra = searcher(name)
			if type(loader) == "function" then
				m = loader(name, extra)
				loaded[name] = m
				break
			end
		end
	end
	return m
end

----------------------------------------------------------------------------------------
-- built-in protocols

skynet.register_protocol {
	name = "lua",
	id = skynet.PTYPE_LUA,
	pack = c.pack,
	unpack = c.unpack,
}

skynet.register_protocol {
	name = "response",
	id = PTYPE_RESPONSE,
}

skynet.register_protocol {
	name = "error",
	id = PTYPE_ERROR,
	unpack = function(...) return ... end,
	dispatch = function(session, source, msg, sz)
		session_coroutine_id[running_thread] = nil	-- skynet.ignoreret()
		if session ~= 0 and sz and sz > 0 and watching_session[session] then
			err_reason[session] = c.tostring(msg, sz)
		end
		return service_down(session, source)
	end,
}

-- the debug protocol: skynet/debug.lua replaces this dispatch on the first message
skynet.register_protocol {
	name = "debug",
	id = skynet.PTYPE_DEBUG,
	pack = c.pack,
	unpack = c.unpack,
	dispatch = function(...)
		local dispatch = load_module("skynet.debug").init(skynet, {
			dispatch = skynet.dispatch_message,
			info = function() return info_func end,
		})
		return dispatch(...)
	end,
}

----------------------------------------------------------------------------------------
-- the rest of the API: skynet/ext.lua and skynet/ext_debug.lua, loaded on first use.
-- Their functions are written as if they were in this file: their upvalues are joined,
-- by name, to the locals listed in `shared` (any other upvalue of theirs is private to
-- their file).

local function shared()
	return skynet, c, proto, session_id_coroutine, session_coroutine_id,
		session_coroutine_address, session_coroutine_tracetag, unresponse,
		watching_session, sleep_session, fork_q, fork_h, fork_t, running_thread,
		init_thread, info_func, ntraced, trace_source, ntrace_source, timeout_traceback,
		unknown_request, unknown_response, self_handle, service_down, init_all,
		PTYPE_RESPONSE, PTYPE_ERROR, ext, extdbg
end

function load_ext()
	ext = load_module "skynet.ext"
	ext.install(shared, skynet, ext)
	if extdbg then
		setmetatable(skynet, nil)
	end
	return ext
end

function load_extdbg()
	local m = load_module "skynet.ext_debug"
	;(ext or load_ext()).install(shared, skynet, m)
	extdbg = m
	setmetatable(skynet, nil)
	return m
end

setmetatable(skynet, {
	__index = function(t, k)
		if not ext then
			load_ext()
			local v = rawget(t, k)
			if v ~= nil then
				return v
			end
		end
		if not extdbg then
			load_extdbg()
		end
		return rawget(t, k)
	end,
})

return skynet
