-- The less used part of skynet.lua (core.md §9): replies through closures, exit, time,
-- unknown messages, ... skynet.lua loads it on the first access to a field the skynet
-- table lacks (and when a message needs it). Tracing, task lists, killthread and batch
-- requests are in skynet/ext_debug.lua, loaded after this one. Not a module to require
-- directly.
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
	PTYPE_RESPONSE, PTYPE_ERROR, extdbg

local tostring = tostring
local type = type
local error = error
local pcall = pcall
local pairs = pairs
local format = string.format
local traceback = debug.traceback

local co_yield = coroutine.yield
local co_running = coroutine.running
local co_status = coroutine.status
local co_close = coroutine.close

local c_trace = require("skynet.core").trace
local c_send = require("skynet.core").send

local M = { source = debug.getinfo(1, "S").source }	-- used by skynet.lua
local api = {}		-- copied into the skynet table
M.api = api

-- skynet.pcall(start, ...): xpcall(start, traceback, ...) after the pending init
-- functions, as a service start runs them (skynet.service's cells use it).
function api.pcall(start, ...)
	return xpcall(function(...)
		init_all()
		return start(...)
	end, traceback, ...)
end

local function noop() end

-- Join the functions of m (this module or skynet/ext_debug.lua) to skynet.lua's locals
-- and copy m.api into the skynet table. `shared` is skynet.lua's function whose
-- upvalues are those locals. Uses no joined local itself.
function M.install(shared, skynet_table, m)
	local getupvalue, upvaluejoin, getinfo = debug.getupvalue, debug.upvaluejoin, debug.getinfo
	local index = {}
	for i = 1, math.huge do
		local name = getupvalue(shared, i)
		if name == nil then
			break
		end
		index[name] = i
	end
	local source = m.source
	local seen = {}
	local function join(f)
		if seen[f] or getinfo(f, "S").source ~= source then
			return
		end
		seen[f] = true
		for i = 1, math.huge do
			local name, v = getupvalue(f, i)
			if name == nil then
				break
			end
			local j = index[name]
			if j then
				upvaluejoin(f, i, shared, j)
			elseif type(v) == "function" then
				join(v)
			elseif type(v) == "table" and not seen[v] then
				seen[v] = true	-- e.g. a metatable of methods
				for _, mf in pairs(v) do
					if type(mf) == "function" then
						join(mf)
					end
				end
			end
		end
	end
	for _, f in pairs(m) do
		if type(f) == "function" then
			join(f)
		end
	end
	for k, v in pairs(m.api) do
		if type(v) == "function" then
			join(v)
		end
		if rawget(skynet_table, k) == nil then
			skynet_table[k] = v
		end
	end
	m.api = nil
end

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
	-- the native module directly: `require` from a handler coroutine would load the
	-- yield-safe require (skynet/require.lua) for nothing
	local cache = package.loaded["skynet.codecache"]
	local open = package.preload["skynet.codecache"]
	if cache == nil and open then
		cache = open("skynet.codecache")
		package.loaded["skynet.codecache"] = cache
	elseif cache == nil then
		local ok, m = pcall(require, "skynet.codecache")
		cache = ok and m or nil
	end
	api.cache = cache
end

----------------------------------------------------------------------------------------
-- calls

local function yield_call(service, session)
	watching_session[session] = service
	session_id_coroutine[session] = running_thread
	local ok, msg, sz = co_yield "SUSPEND"
	watching_session[session] = nil
	if not ok then
		if msg then
			error("call failed: " .. msg, 0)
		end
		error "call failed"
	end
	return msg, sz
end

function api.rawcall(addr, typename, msg, sz)
	if ntraced > 0 then
		extdbg.trace_call(running_thread, addr)
	end
	local p = proto[typename]
	local session = assert(c_send(addr, p.id, nil, msg, sz), "call to invalid address")
	return yield_call(addr, session)
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

return M
