-- 2016-era idioms: wait(co)/wakeup(co), init(f, name), term, monitor, forward_type,
-- filter, dispatch_unknown_request, register_protocol, redirect, harbor API
local skynet = require "skynet"
require "skynet.manager"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local inited = false
skynet.init(function() inited = true end, "named-init")

skynet.register_protocol {
	name = "client",
	id = skynet.PTYPE_CLIENT,
	pack = function(...) return ... end,
	unpack = skynet.tostring,
	dispatch = function(session, source, msg)
		CLIENT_MSG = msg
	end,
}

T.run(function()
	T.eq(inited, true, "init(f, name)")
	-- wait(co) / wakeup(co)
	local co
	local woke = false
	skynet.fork(function()
		co = coroutine.running()
		skynet.wait(co)
		woke = true
	end)
	skynet.yield()
	skynet.wakeup(co)
	skynet.yield()
	T.eq(woke, true, "wait(co)/wakeup(co)")

	-- send our own client protocol with a raw string
	skynet.send(skynet.self(), "client", "raw-bytes")
	skynet.yield()
	T.eq(CLIENT_MSG, "raw-bytes", "custom protocol")

	-- redirect with an explicit source
	local peer = skynet.newservice "t_call_peer"
	skynet.redirect(skynet.self(), peer, "client", 0, "redirected")
	skynet.yield()
	T.eq(CLIENT_MSG, "redirected", "redirect")

	-- skynet.term: pretend peer died; our pending call fails
	local failed
	skynet.fork(function()
		failed = not pcall(skynet.call, peer, "lua", "slow", 1000, "x")
	end)
	skynet.sleep(1)
	skynet.term(peer)
	skynet.sleep(1)
	T.eq(failed, true, "term fails pending calls")

	-- dispatch_unknown_request
	local unknown
	local prev = skynet.dispatch_unknown_request(function(session, source, msg, sz, prototype)
		unknown = prototype
	end)
	T.eq(type(prev), "function", "previous unknown handler")
	skynet.send(skynet.self(), "client", "x")	-- still dispatched normally
	skynet.yield()
	skynet.dispatch_unknown_request(prev)

	-- forward_type / filter services
	local fwd = skynet.newservice "t_forward"
	T.eq(skynet.call(fwd, "lua", "hello"), "fwd:hello", "forward_type service")
	local flt = skynet.newservice "t_filter"
	T.eq(skynet.call(flt, "lua", "x"), "filtered:x", "filter service")

	-- harbor helpers
	local id, remote = skynet.harbor(skynet.self())
	T.eq(id, 0, "harbor id")
	T.eq(remote, false, "not remote")

	-- monitor
	local m = skynet.monitor "t_monitor"
	T.eq(math.type(m), "integer", "monitor handle")
	local victim = skynet.newservice "t_call_peer"
	skynet.kill(victim)
	skynet.sleep(5)
	T.eq(skynet.call(m, "lua", "last"), victim, "monitor saw the exit")
end)
