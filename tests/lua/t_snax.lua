-- skynet.snax: snaxd services, post/req, errors, hotfix joining live upvalues,
-- unique/query through service_mgr, profile, the lua protocol after
-- enablecluster, kill with exit arguments.
local skynet = require "skynet"
local snax = require "skynet.snax"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local c = snax.newservice("snax_counter", "a", 1)
	T.check(tostring(c):match("^%[snax_counter:%x+%]$") ~= nil, "tostring " .. tostring(c))
	T.eq(c.req.ping("pong"), "pong", "req")
	c.post.bump(2)
	c.post.bump()
	local n, greeting = c.req.count()
	T.eq(n, 3, "posts arrive before the next request")
	T.eq(greeting, "hi", "second result")
	T.errors("a raising response method", "call failed", c.req.fail)
	T.errors("unknown method", "request snax_counter:nothing no exist", function()
		return c.req.nothing
	end)
	T.errors("unknown post", "post snax_counter:nothing no exist", function()
		return c.post.nothing
	end)
	local old = snax.hotfix(c, [[
local n
local greeting
function accept.bump(k)
	n = n + 100 * (k or 1)
end
function hotfix(x)
	greeting = x
	return n
end
]], "patched")
	T.eq(old, 3, "hotfix returns what the patch's hotfix returns")
	c.post.bump()
	n, greeting = c.req.count()
	T.eq(n, 103, "the patched method changes the live state")
	T.eq(greeting, "patched", "the patch's hotfix changed a live local")
	T.errors("patch of a missing method", "Patch mismatch accept.nope", snax.hotfix, c,
		"function accept.nope() end")
	local u1 = snax.uniqueservice("snax_counter", "u")
	local u2 = snax.queryservice("snax_counter")
	T.eq(u1.handle, u2.handle, "uniqueservice/queryservice")
	T.check(u1.handle ~= c.handle, "a unique one is another service")
	local info = snax.profile_info(c)
	T.eq(info.ping and info.ping.count, 1, "profile counts requests")
	T.eq(info.bump and info.bump.count, 3, "profile counts posts")
	T.eq(skynet.call(c.handle, "lua", snax.interface("snax_counter").response.ping, "lua"), "lua",
		"enablecluster: the lua protocol reaches the methods")
	snax.kill(c, "bye")
	T.errors("killed", nil, c.req.count)
end)
