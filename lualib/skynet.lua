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

local c = require "skynet.core"
local skynet_require = require "skynet.require"

local tostring = tostring
local type = type
local error = error
local pcall = pcall
local select = select
local pairs = pairs
local format = string.format
local traceback = debug.traceback

local co_create = coroutine.create
local co_resume = coroutine.resume
local co_yield = coroutine.yield
local co_running = coroutine.running
local co_status = coroutine.status
local co_close = coroutine.close

local c_send = c.send
local c_redirect = c.redirect
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
local PTYPE_TRACE = 12

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
local fork_q, fork_h, fork_t = {}, 1, 0

local running_thread = nil
local init_thread = nil
local info_func = nil

-- tracing state; the hot paths only test the two counters
local ntraced = 0		-- coroutines carrying a trace tag (or a forced-off marker)
local trace_source = {}	-- source -> tag announced by a PTYPE_TRACE message
local ntrace_source = 0
local traceid = 0
local timeout_traceback = nil

----------------------------------------------------------------------------------------
-- addresses, environment, time

local self_handle = c.addresscommand "REG"

function skynet.self()
	return self_handle
end

function skynet.localname(name)
	return c.addresscommand("QUERY", name)
end

function skynet.address(addr)
	if type(addr) == "number" then
		return format(":%08x", addr)
	end
	return tostring(addr)
end

function skynet.harbor(addr)
	return c.harbor(addr)
end

skynet.now = c.now
skynet.hpc = c.hpc

local starttime
function skynet.starttime()
	if not starttime then
		starttime = c.intcommand "STARTTIME"
	end
	return starttime
end

function skynet.time()
	return c.now() / 100 + (starttime or skynet.starttime())
end

function skynet.getenv(key)
	return (c.command("GETENV", key))
end

function skynet.setenv(key, value)
	assert(c.command("GETENV", key) == nil, "Can't setenv exist key : " .. key)
	c.command("SETENV", key .. " " .. value)
end

skynet.error = c.error
skynet.tracelog = c_trace
skynet.pack = c.pack
skynet.packstring = c.packstring
skynet.unpack = c.unpack
skynet.tostring = c.tostring
skynet.trash = c.trash
skynet.genid = c.genid

do
	local ok, cache = pcall(require, "skynet.codecache")
	if ok then
		skynet.cache = cache
	end
end

----------------------------------------------------------------------------------------
-- tracing (slow paths; only entered when something is traced)

local function set_tracetag(co, tag)
	local old = session_coroutine_tracetag[co]
	if old == nil then
		if tag ~= nil then
			ntraced = ntraced + 1
		end
	elseif tag == nil then
		ntraced = ntraced - 1
	end
	session_coroutine_tracetag[co] = tag
end

local function trace_event(co, event)
	local tag = session_coroutine_tracetag[co]
	if tag then
		c_trace(tag, event)
	end
end

local function trace_end(co)
	local tag = session_coroutine_tracetag[co]
	if tag ~= nil then
		if tag then
			c_trace(tag, "end")
		end
		set_tracetag(co, nil)
	end
end

function skynet.trace(info)
	local co = running_thread
	if session_coroutine_tracetag[co] == false then
		return	-- tracing forced off for this request
	end
	traceid = traceid + 1
	local tag = format(":%08x-%d", self_handle, traceid)
	set_tracetag(co, tag)
	if info then
		c_trace(tag, "trace " .. info)
	else
		c_trace(tag, "trace")
	end
end

function skynet.tracetag()
	return session_coroutine_tracetag[running_thread]
end

function skynet.traceproto(prototype, flag)
	local p = assert(proto[prototype])
	p.trace = flag
end

local function trace_request(co, p, source)
	local flag = p.trace
	local tag = trace_source[source]
	if tag then
		trace_source[source] = nil
		ntrace_source = ntrace_source - 1
	end
	if flag == false then
		set_tracetag(co, false)
	elseif tag then
		c_trace(tag, "request")
		set_tracetag(co, tag)
	elseif flag then
		local saved = running_thread
		running_thread = co
		skynet.trace()
		running_thread = saved
	end
end

local function trace_call(tag, addr)
	c_trace(tag, "call", 3)
	c_send(addr, PTYPE_TRACE, 0, tag)
end

----------------------------------------------------------------------------------------
-- coroutine pool

local pool, npool = {}, 0

local function forgot_response(co, session, f)
	local info = debug.getinfo(f, "S")
	c.error(format("Maybe forgot response session %s from %s : %s:%d", session,
		skynet.address(session_coroutine_address[co]), info.source, info.linedefined))
end

local function new_thread()
	local co, body
	-- the job finished: settle its bookkeeping and wait in the pool for the next one
	local function park(f)
		local session = session_coroutine_id[co]
		if session ~= nil then
			if session ~= 0 then
				forgot_response(co, session, f)
			end
			session_coroutine_id[co] = nil
		end
		session_coroutine_address[co] = nil
		if ntraced > 0 then
			trace_end(co)
		end
		f = nil
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
		local co = session_id_coroutine[session]
		if co ~= nil and co ~= "BREAK" then
			session_id_coroutine[session] = nil
			running_thread = co
			return suspend(co, co_resume(co, false, nil, nil, session))
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
					trace_event(co, "resume")
				end
				running_thread = co
				return suspend(co, co_resume(co, false, "BREAK", nil, session))
			end
		end
	end
	wake_h, wake_t = 1, 0
	return dispatch_error_queue()
end

local function noop() end

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
		if cmd == "SUSPEND" then
			if wake_h <= wake_t or err_h <= err_t then
				return dispatch_wakeup()
			end
			return
		elseif cmd == "QUIT" then
			-- skynet.exit(): the service is gone
			co_close(co)
			return
		elseif cmd == nil then
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
		local tag = session_coroutine_tracetag[co]
		if tag then
			c_trace(tag, "error")
		end
		set_tracetag(co, nil)
	end
	report(traceback(co, tostring(cmd)))
	co_close(co)
	return dispatch_wakeup()
end

local function unknown_request(session, address, msg, sz, prototype)
	c.error(format("Unknown request (%s): %s", prototype, c.tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

local function unknown_response(session, address, msg, sz)
	c.error(format("Response message : %s", c.tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

function skynet.dispatch_unknown_request(f)
	local prev = unknown_request
	unknown_request = f
	return prev
end

function skynet.dispatch_unknown_response(f)
	local prev = unknown_response
	unknown_response = f
	return prev
end

local function dispatch_request(co, f, session, source, ...)
	session_coroutine_id[co] = session
	session_coroutine_address[co] = source
	running_thread = co
	return suspend(co, co_resume(co, f, session, source, ...))
end

local function raw_dispatch(prototype, msg, sz, session, source)
	if prototype == PTYPE_RESPONSE then
		local co = session_id_coroutine[session]
		if co == "BREAK" then
			session_id_coroutine[session] = nil
		elseif co == nil then
			local ok, err = pcall(unknown_response, session, source, msg, sz)
			if not ok then
				report(tostring(err))
			end
		else
			session_id_coroutine[session] = nil
			if ntraced > 0 then
				trace_event(co, "resume")
			end
			running_thread = co
			return suspend(co, co_resume(co, true, msg, sz, session))
		end
		return
	end
	local p = proto[prototype]
	local f = p and p.dispatch
	if f then
		if p.trace ~= nil or ntrace_source > 0 then
			local co = co_get()
			trace_request(co, p, source)
			return dispatch_request(co, f, session, source, p.unpack(msg, sz))
		end
		return dispatch_request(co_get(), f, session, source, p.unpack(msg, sz))
	end
	if prototype == PTYPE_TRACE then
		-- the tag of the next request from this source
		if trace_source[source] == nil then
			ntrace_source = ntrace_source + 1
		end
		trace_source[source] = c.tostring(msg, sz)
	elseif session ~= 0 then
		c_send(source, PTYPE_ERROR, session, "")
	else
		local ok, err = pcall(unknown_request, session, source, msg, sz, p and p.name or prototype)
		if not ok then
			report(tostring(err))
		end
	end
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

function skynet.dispatch_message(prototype, msg, sz, session, source)
	raw_dispatch(prototype, msg, sz, session, source)
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
	return c_redirect(dest, source, proto[typename].id, ...)
end

local function yield_call(service, session)
	watching_session[session] = service
	session_id_coroutine[session] = running_thread
	local ok, msg, sz = co_yield "SUSPEND"
	watching_session[session] = nil
	if not ok then
		error "call failed"
	end
	return msg, sz
end

function skynet.call(addr, typename, ...)
	if ntraced > 0 then
		local tag = session_coroutine_tracetag[running_thread]
		if tag then
			trace_call(tag, addr)
		end
	end
	local p = proto[typename]
	local session = c_send(addr, p.id, nil, p.pack(...))
	if not session then
		error("call to invalid address " .. skynet.address(addr))
	end
	return p.unpack(yield_call(addr, session))
end

function skynet.rawcall(addr, typename, msg, sz)
	if ntraced > 0 then
		local tag = session_coroutine_tracetag[running_thread]
		if tag then
			trace_call(tag, addr)
		end
	end
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	return yield_call(addr, session)
end

function skynet.tracecall(tag, addr, typename, msg, sz)
	c_trace(tag, "tracecall begin")
	c_send(addr, PTYPE_TRACE, 0, tag)
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	local rmsg, rsz = yield_call(addr, session)
	c_trace(tag, "tracecall end")
	return rmsg, rsz
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
		trace_event(co, "response")
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

function skynet.context()
	local co = running_thread
	return session_coroutine_id[co], session_coroutine_address[co]
end

function skynet.response(pack)
	pack = pack or c.pack
	local co = running_thread
	local session = session_coroutine_id[co]
	if session == nil then
		error "no session"
	end
	session_coroutine_id[co] = nil
	if session == 0 then
		return noop
	end
	local address = session_coroutine_address[co]
	local tag = ntraced > 0 and session_coroutine_tracetag[co] or nil
	local used = false
	local function response(ok, ...)
		if ok == "TEST" then
			return unresponse[response] ~= nil
		end
		if used then
			error "Can't response more than once"
		end
		used = true
		if unresponse[response] == nil then
			return false	-- the requester is gone
		end
		unresponse[response] = nil
		if tag then
			c_trace(tag, "response")
		end
		local ret
		if ok then
			ret = c_send(address, PTYPE_RESPONSE, session, pack(...))
			if ret == false then
				c_send(address, PTYPE_ERROR, session, "")
			end
		else
			ret = c_send(address, PTYPE_ERROR, session, "")
		end
		return ret ~= nil and ret ~= false
	end
	unresponse[response] = address
	return response
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

function skynet.term(service)
	return service_down(0, service)
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
	local session = c.intcommand("TIMEOUT", ti)
	assert(session)
	local co = co_get()
	co_resume(co, timer_entry, func, co)
	if timeout_traceback then
		timeout_traceback[co] = traceback(format("TIMER %d+%d : ", c.now(), ti), 2)
	end
	session_id_coroutine[session] = co
	return co
end

function skynet.trace_timeout(on)
	if on then
		timeout_traceback = timeout_traceback or setmetatable({}, { __mode = "k" })
	else
		timeout_traceback = nil
	end
end

local function suspend_sleep(session, token)
	if ntraced > 0 then
		local tag = session_coroutine_tracetag[running_thread]
		if tag then
			c_trace(tag, "sleep", 3)
		end
	end
	session_id_coroutine[session] = running_thread
	sleep_session[token] = session
	return co_yield "SUSPEND"
end

function skynet.sleep(ti, token)
	token = token or co_running()
	if sleep_session[token] ~= nil then
		error "token duplicative"
	end
	local session = c.intcommand("TIMEOUT", ti)
	assert(session)
	local ok, ret = suspend_sleep(session, token)
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
	suspend_sleep(session, token)
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

-- a thread whose tostring() contains `name` ("thread: 0x..." or just "0x...")
local function find_thread(name)
	local function match(co)
		return type(co) == "thread" and tostring(co):find(name, 1, true) ~= nil
	end
	for i = fork_h, fork_t do
		local co = fork_q[i]
		if match(co) then
			return co
		end
	end
	for _, co in pairs(session_id_coroutine) do
		if match(co) then
			return co
		end
	end
	for co in pairs(session_coroutine_id) do
		if match(co) then
			return co
		end
	end
end

function skynet.killthread(co)
	if type(co) == "string" then
		co = find_thread(co)
		if co == nil then
			return
		end
	end
	if co == co_running() or co == running_thread then
		error "Can't kill the running thread"
	end
	-- a fork that has not started yet
	for i = fork_h, fork_t do
		if fork_q[i] == co then
			fork_q[i] = false
			co_close(co)
			return co
		end
	end
	local found = false
	for session, v in pairs(session_id_coroutine) do
		if v == co then
			found = true
			session_id_coroutine[session] = "BREAK"
			watching_session[session] = nil
			for token, s in pairs(sleep_session) do
				if s == session then
					sleep_session[token] = nil
				end
			end
		end
	end
	local session = session_coroutine_id[co]
	if session ~= nil then
		found = true
		if session ~= 0 then
			c_send(session_coroutine_address[co], PTYPE_ERROR, session, "")
		end
		session_coroutine_id[co] = nil
	end
	if not found then
		return
	end
	session_coroutine_address[co] = nil
	if session_coroutine_tracetag[co] ~= nil then
		set_tracetag(co, nil)
	end
	if co_status(co) == "suspended" then
		co_close(co)
	end
	return co
end

----------------------------------------------------------------------------------------
-- batch requests: skynet.request(...):select(timeout)

local request_meta = {}
request_meta.__index = request_meta

function request_meta:add(obj)
	assert(type(obj) == "table" and not self._select, "invalid request")
	self[#self + 1] = obj
	return self
end
request_meta.__call = request_meta.add

function request_meta:close()
	local threads = self._threads
	if threads then
		self._threads = nil
		for co in pairs(threads) do
			skynet.killthread(co)
		end
	end
	local waiter = self._waiter
	if waiter then
		self._waiter = nil
		skynet.wakeup(waiter)
	end
end
request_meta.__close = request_meta.close

local function request_one(self, req)
	local ret = table.pack(pcall(skynet.call, table.unpack(req)))
	local threads = self._threads
	if not threads then
		return	-- closed (timed out)
	end
	threads[co_running()] = nil
	self._pending = self._pending - 1
	local done = self._done
	if ret[1] then
		done[#done + 1] = { req, table.pack(select(2, table.unpack(ret, 1, ret.n))) }
	else
		done[#done + 1] = { req, false, ret[2] }
	end
	if self._waiter then
		skynet.wakeup(self._waiter)
	end
end

local function request_timer(self, ti)
	skynet.sleep(ti)
	self._expired = true
	if self._waiter then
		skynet.wakeup(self._waiter)
	end
end

local function request_next(self)
	while true do
		local done = self._done
		local i = self._read + 1
		local item = done[i]
		if item then
			done[i] = false
			self._read = i
			return item[1], item[2], item[3]
		end
		if self._pending == 0 or self._expired or not self._threads then
			self:close()
			return
		end
		local token = {}
		self._waiter = token
		skynet.wait(token)
		self._waiter = nil
	end
end

function request_meta:select(timeout)
	assert(not self._select, "select twice")
	self._select = true
	self._threads = {}
	self._done = {}
	self._read = 0
	self._pending = #self
	for i = 1, #self do
		local co = skynet.fork(request_one, self, self[i])
		self._threads[co] = true
	end
	if timeout then
		local timer = skynet.fork(request_timer, self, timeout)
		self._threads[timer] = true
	end
	return request_next, self
end

function skynet.request(obj)
	local r = setmetatable({}, request_meta)
	if obj then
		return r:add(obj)
	end
	return r
end

----------------------------------------------------------------------------------------
-- service lifecycle

skynet.init = skynet_require.init

-- HEAD: plain pcall. 2016 code used skynet.pcall(start) to run pending init
-- functions first: do that too (a no-op once the service has started).
function skynet.pcall(f, ...)
	skynet_require.init_all()
	return pcall(f, ...)
end

function skynet.init_service(start)
	local ok, err = xpcall(function()
		skynet_require.init_all()
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

function skynet.exit()
	fork_q, fork_h, fork_t = {}, 1, 0
	skynet.send(".launcher", "lua", "REMOVE", self_handle, false)
	-- everyone waiting for our reply gets an error
	for co, session in pairs(session_coroutine_id) do
		local address = session_coroutine_address[co]
		if session ~= 0 and address then
			c_send(address, PTYPE_ERROR, session, "")
		end
	end
	local me = co_running()
	for _, co in pairs(session_id_coroutine) do
		if type(co) == "thread" and co ~= me and co ~= running_thread and co_status(co) == "suspended" then
			co_close(co)
		end
	end
	for resp in pairs(unresponse) do
		resp(false)
	end
	-- services we are still waiting on: tell them we are gone
	local callee = {}
	for _, address in pairs(watching_session) do
		callee[address] = true
	end
	for address in pairs(callee) do
		c_send(address, PTYPE_ERROR, 0, "")
	end
	c.callback(function(_, _, _, session, source)
		if session ~= 0 and source ~= 0 then
			c_send(source, PTYPE_ERROR, session, "")
		end
	end)
	c.command "EXIT"
	co_yield "QUIT"
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

----------------------------------------------------------------------------------------
-- introspection

function skynet.endless()
	return c.intcommand("STAT", "endless") == 1
end

function skynet.mqlen()
	return c.intcommand("STAT", "mqlen")
end

function skynet.stat(what)
	return c.intcommand("STAT", what)
end

function skynet.memlimit(bytes)
	debug.getregistry().memlimit = bytes
	skynet.memlimit = nil
end

function skynet.info_func(func)
	info_func = func
end

local function thread_traceback(co)
	if co == "BREAK" then
		return "BREAK"
	end
	return (timeout_traceback and timeout_traceback[co]) or traceback(co)
end

function skynet.task(ret)
	if ret == nil then
		local n = 0
		for _, co in pairs(session_id_coroutine) do
			if co ~= "BREAK" then
				n = n + 1
			end
		end
		return n
	end
	if ret == "init" then
		if init_thread then
			return traceback(init_thread)
		end
		return
	end
	local t = type(ret)
	if t == "table" then
		for session, co in pairs(session_id_coroutine) do
			ret[format("%s session: %d", tostring(co), session)] = thread_traceback(co)
		end
	elseif t == "number" then
		local co = session_id_coroutine[ret]
		if co then
			return thread_traceback(co)
		end
		return "No session"
	elseif t == "thread" then
		for session, co in pairs(session_id_coroutine) do
			if co == ret then
				return session
			end
		end
	end
end

function skynet.uniqtask()
	local stacks = {}
	for session, co in pairs(session_id_coroutine) do
		local stack = thread_traceback(co)
		local info = stacks[stack]
		if not info then
			info = { count = 0, sessions = {} }
			stacks[stack] = info
		end
		info.count = info.count + 1
		if info.count < 10 then
			info.sessions[#info.sessions + 1] = session
		end
	end
	local ret = {}
	for stack, info in pairs(stacks) do
		local sessions = table.concat(info.sessions, ",")
		if info.count > 10 then
			sessions = sessions .. "..."
		end
		ret[format("%d\tsessions:[%s]\n", info.count, sessions)] = stack
	end
	return ret
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
	dispatch = function(session, source)
		skynet.ignoreret()
		return service_down(session, source)
	end,
}

require("skynet.debug").init(skynet, {
	dispatch = skynet.dispatch_message,
	info = function() return info_func end,
})

return skynet
