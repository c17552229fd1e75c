-- The debugging part of skynet.lua (core.md §9): tracing, task lists, killthread and
-- batch requests (skynet.request). skynet.lua loads it on demand, after skynet/ext.lua.
-- Not a module to require directly.
--
-- Like skynet/ext.lua, its functions share skynet.lua's locals: the locals declared in
-- the next block are joined, by name, to skynet.lua's after loading (see `shared`
-- there); they are nil at load time. Any other file-level local is private.

local skynet, c, proto, session_id_coroutine, session_coroutine_id,
	session_coroutine_address, session_coroutine_tracetag,
	watching_session, sleep_session, fork_q, fork_h, fork_t, running_thread,
	init_thread, ntraced, trace_source, ntrace_source, timeout_traceback,
	self_handle, PTYPE_ERROR

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

local M = { source = debug.getinfo(1, "S").source }	-- used by skynet.lua
local api = {}		-- copied into the skynet table
M.api = api

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

function api.tracecall(tag, addr, typename, msg, sz)
	c_trace(tag, "tracecall begin")
	c_send(addr, PTYPE_TRACE, 0, tag)
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	watching_session[session] = addr
	session_id_coroutine[session] = running_thread
	local ok, rmsg, rsz = co_yield "SUSPEND"
	watching_session[session] = nil
	if not ok then
		if rmsg then
			error("call failed: " .. rmsg, 0)
		end
		error "call failed"
	end
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
	self.timeout = true -- upstream's flag: the select ended by its timeout
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
	-- the fourth value closes the batch when a loop breaks out early
	return request_next, self, nil, self
end

function api.request(obj)
	local r = setmetatable({}, request_meta)
	if obj then
		return r:add(obj)
	end
	return r
end

----------------------------------------------------------------------------------------
-- task lists

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
