-- The rarely used part of skynet.lua (core.md §9), loaded by it on the first access to
-- a field the skynet table lacks (and by the dispatcher when tracing or an unknown
-- message needs it). Not a module to require directly.
--
-- The locals declared in the next block are skynet.lua's own: after loading this file
-- skynet.lua joins the upvalues of every function here, by name, to its locals (see
-- `shared` there), so these functions read and write its state directly. Do not use
-- them at load time (they are nil until joined); any other file-level local here is
-- private to this file.

local skynet, c, proto, session_id_coroutine, session_coroutine_id,
	session_coroutine_address, session_coroutine_tracetag, unresponse,
	watching_session, sleep_session, fork_q, fork_h, fork_t, running_thread,
	init_thread, info_func, ntraced, trace_source, ntrace_source, timeout_traceback,
	unknown_request, unknown_response, self_handle, service_down, init_all,
	PTYPE_RESPONSE, PTYPE_ERROR

local tostring = tostring
local type = type
local error = error
local pcall = pcall
local select = select
local pairs = pairs
local format = string.format
local traceback = debug.traceback

local co_yield = coroutine.yield
local co_running = coroutine.running
local co_status = coroutine.status
local co_close = coroutine.close

local c_trace = require("skynet.core").trace
local c_send = require("skynet.core").send
local PTYPE_TRACE = 12

local M = {}		-- used by skynet.lua
local api = {}		-- copied into the skynet table
M.api = api

local function noop() end

----------------------------------------------------------------------------------------
-- addresses, environment, time

function api.localname(name)
	return c.addresscommand("QUERY", name)
end

function api.harbor(addr)
	return c.harbor(addr)
end

local starttime
function api.starttime()
	if not starttime then
		starttime = c.intcommand "STARTTIME"
	end
	return starttime
end

function api.time()
	return c.now() / 100 + (starttime or skynet.starttime())
end

function api.setenv(key, value)
	assert(c.command("GETENV", key) == nil, "Can't setenv exist key : " .. key)
	c.command("SETENV", key .. " " .. value)
end

do
	local ok, cache = pcall(require, "skynet.codecache")
	if ok then
		api.cache = cache
	end
end

----------------------------------------------------------------------------------------
-- tracing (slow paths; only entered when something is traced)

local traceid = 0

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

function M.trace_event(co, event)
	local tag = session_coroutine_tracetag[co]
	if tag then
		c_trace(tag, event)
	end
end

function M.trace_end(co)
	local tag = session_coroutine_tracetag[co]
	if tag ~= nil then
		if tag then
			c_trace(tag, "end")
		end
		set_tracetag(co, nil)
	end
end

-- the coroutine co raised an error
function M.trace_error(co)
	local tag = session_coroutine_tracetag[co]
	if tag then
		c_trace(tag, "error")
	end
	set_tracetag(co, nil)
end

-- called by skynet.sleep / skynet.wait (the traceback level counts that frame)
function M.trace_sleep(co)
	local tag = session_coroutine_tracetag[co]
	if tag then
		c_trace(tag, "sleep", 3)
	end
end

-- called by skynet.call / skynet.rawcall (the traceback level counts that frame)
function M.trace_call(co, addr)
	local tag = session_coroutine_tracetag[co]
	if tag then
		c_trace(tag, "call", 3)
		c_send(addr, PTYPE_TRACE, 0, tag)
	end
end

function api.trace(info)
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

function api.tracetag()
	return session_coroutine_tracetag[running_thread]
end

function api.traceproto(prototype, flag)
	local p = assert(proto[prototype])
	p.trace = flag
end

function M.trace_request(co, p, source)
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

function api.rawcall(addr, typename, msg, sz)
	if ntraced > 0 then
		M.trace_call(running_thread, addr)
	end
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	return yield_call(addr, session)
end

function api.tracecall(tag, addr, typename, msg, sz)
	c_trace(tag, "tracecall begin")
	c_send(addr, PTYPE_TRACE, 0, tag)
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	local rmsg, rsz = yield_call(addr, session)
	c_trace(tag, "tracecall end")
	return rmsg, rsz
end

function api.trace_timeout(on)
	if on then
		timeout_traceback = timeout_traceback or setmetatable({}, { __mode = "k" })
	else
		timeout_traceback = nil
	end
end

----------------------------------------------------------------------------------------
-- unknown messages, forgotten responses

function M.forgot_response(co, session, f)
	local info = debug.getinfo(f, "S")
	c.error(format("Maybe forgot response session %s from %s : %s:%d", session,
		skynet.address(session_coroutine_address[co]), info.source, info.linedefined))
end

function M.unknown_request(session, address, msg, sz, prototype)
	c.error(format("Unknown request (%s): %s", prototype, c.tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

function M.unknown_response(session, address, msg, sz)
	c.error(format("Response message : %s", c.tostring(msg, sz) or ""))
	error(format("Unknown session : %d from %x", session, address))
end

function api.dispatch_unknown_request(f)
	local prev = unknown_request or M.unknown_request
	unknown_request = f
	return prev
end

function api.dispatch_unknown_response(f)
	local prev = unknown_response or M.unknown_response
	unknown_response = f
	return prev
end

----------------------------------------------------------------------------------------
-- replies

function api.context()
	local co = running_thread
	return session_coroutine_id[co], session_coroutine_address[co]
end

function api.response(pack)
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

function api.term(service)
	return service_down(0, service)
end

----------------------------------------------------------------------------------------
-- killthread

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

function api.killthread(co)
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

function api.request(obj)
	local r = setmetatable({}, request_meta)
	if obj then
		return r:add(obj)
	end
	return r
end

----------------------------------------------------------------------------------------
-- service lifecycle

-- HEAD: plain pcall. 2016 code used skynet.pcall(start) to run pending init
-- functions first: do that too (a no-op once the service has started).
function api.pcall(f, ...)
	init_all()
	return pcall(f, ...)
end

function api.exit()
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

----------------------------------------------------------------------------------------
-- introspection

function api.endless()
	return c.intcommand("STAT", "endless") == 1
end

function api.mqlen()
	return c.intcommand("STAT", "mqlen")
end

function api.stat(what)
	return c.intcommand("STAT", what)
end

function api.memlimit(bytes)
	debug.getregistry().memlimit = bytes
	skynet.memlimit = nil
end

function api.info_func(func)
	info_func = func
end

local function thread_traceback(co)
	if co == "BREAK" then
		return "BREAK"
	end
	return (timeout_traceback and timeout_traceback[co]) or traceback(co)
end

function api.task(ret)
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

function api.uniqtask()
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

return M
