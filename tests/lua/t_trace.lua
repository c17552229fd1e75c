-- trace facility: skynet.trace tags propagate to callees through PTYPE_TRACE
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local peer = skynet.newservice "t_call_peer"
	skynet.fork(function()
		skynet.trace "traced-call"
		local tag = skynet.tracetag()
		T.check(type(tag) == "string" and tag:match "^:%x%x%x%x%x%x%x%x%-%d+$", "tag format " .. tostring(tag))
		T.eq(skynet.call(peer, "lua", "echo", "t"), "t", "traced call works")
		skynet.sleep(1)
		TRACE_DONE = true
	end)
	T.eq(skynet.tracetag(), nil, "untraced coroutine has no tag")
	while not TRACE_DONE do skynet.sleep(1) end
	-- traceproto forces tracing of every lua request of the peer
	skynet.call(peer, "debug", "TRACELOG", "lua", true)
	T.eq(skynet.call(peer, "lua", "echo", "u"), "u", "call to a traced protocol")
	skynet.call(peer, "debug", "TRACELOG", false)
	T.eq(skynet.call(peer, "lua", "echo", "v"), "v", "tracing off")
end)
