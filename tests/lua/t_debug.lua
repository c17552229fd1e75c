-- the debug protocol
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local function dcall(addr, ...)
	return skynet.call(addr, "debug", ...)
end

T.run(function()
	local p = skynet.newservice "t_debug_peer"
	T.eq(math.type(dcall(p, "MEM")), "float", "MEM kb")
	local st = dcall(p, "STAT")
	T.check(type(st) == "table", "STAT table")
	T.eq(st.task, 0, "STAT task")
	T.eq(st.mqlen, 0, "STAT mqlen")
	T.check(type(st.cpu) == "number" and type(st.message) == "number" and st.message > 0, "STAT cpu/message")
	T.eq(select("#", dcall(p, "PING")), 0, "PING empty reply")
	T.eq(dcall(p, "SUPPORT", "lua"), true, "SUPPORT lua")
	T.eq(dcall(p, "SUPPORT", "text"), false, "SUPPORT text")
	local i, x = dcall(p, "INFO", "arg")
	T.eq(type(i) == "table" and i.name, "peer", "INFO via info_func")
	T.eq(x, "arg", "INFO args")
	T.eq(dcall(skynet.self(), "INFO"), nil, "INFO without info_func")
	T.eq(dcall(p, "HELLO", 1), "hello 1", "registered debug command")
	T.errors("unknown debug command", "call failed", dcall, p, "NOSUCH")

	-- TASK while the peer has a blocked request
	skynet.fork(function() pcall(skynet.call, p, "lua", "sleep", 100) end)
	skynet.sleep(2)
	local tasks = dcall(p, "TASK")
	local name, session
	for k, v in pairs(tasks) do
		name, session = k:match "^(thread: %S+) session: (%d+)$"
		T.check(v:find("t_debug_peer.lua", 1, true) ~= nil, "TASK traceback mentions the handler")
	end
	T.check(name ~= nil, "TASK lists the blocked coroutine")
	T.eq(dcall(p, "STAT").task, 1, "STAT task while blocked")
	T.check(dcall(p, "TASK", tonumber(session)):find("stack traceback", 1, true) ~= nil, "TASK session")
	T.eq(dcall(p, "TASK", 99999), "No session", "TASK unknown session")
	local u = dcall(p, "UNIQTASK")
	local k1 = next(u)
	T.check(k1 and k1:match "^1\tsessions:%[%d+%]\n$", "UNIQTASK key " .. tostring(k1))
	T.eq(dcall(p, "KILLTASK", "thread: 0xdeadbeef"), "Not found", "KILLTASK unknown")
	T.eq(select("#", dcall(p, "KILLTASK", name)), 0, "KILLTASK")
	T.eq(dcall(p, "STAT").task, 0, "task killed")

	-- RUN: inject code with print capture and _P upvalues
	local ok, out = dcall(p, "RUN", [[
		print("hi", 1, nil)
		print(_P.lua.secret, ...)
	]], "inline.lua", "a1")
	T.eq(ok, true, "RUN ok")
	T.eq(out, "hi\t1\tnil\npeer-upvalue\ta1", "RUN output")
	ok, out = dcall(p, "RUN", "error 'bad'", "bad.lua")
	T.eq(ok, false, "RUN error")
	T.check(out:find("bad", 1, true) ~= nil, "RUN error text")

	-- TRACELOG, GC
	T.eq(select("#", dcall(p, "TRACELOG", true)), 0, "TRACELOG")
	skynet.send(p, "debug", "GC")

	-- LINK: answered (with an error) only when the service exits
	local linked = "pending"
	skynet.fork(function()
		linked = pcall(dcall, p, "LINK")
	end)
	skynet.sleep(2)
	T.eq(linked, "pending", "LINK pending")
	skynet.send(p, "debug", "EXIT")
	skynet.sleep(5)
	T.eq(linked, false, "LINK fails on exit")
	T.errors("debug after EXIT", "call to invalid address", dcall, p, "PING")
end)
