-- skynet.request{...}:select(ti): responses in arrival order, errors as false, and
-- the `timeout` flag upstream sets when the timeout ends the select.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local mode = ...

if mode == "slave" then
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, cmd, ti, s)
			if cmd == "error" then
				error "ERROR"
			end
			skynet.sleep(ti)
			skynet.ret(skynet.pack(s))
		end)
	end)
	return
end

T.run(function()
	local slave = skynet.newservice(SERVICE_NAME, "slave")
	local order = {}
	for _, resp in skynet.request
		{ slave, "lua", "ping", 30, "C" }
		{ slave, "lua", "ping", 10, "A" }
		{ slave, "lua", "ping", 20, "B" }
		:select() do
		order[#order + 1] = resp[1]
	end
	T.seq(order, { "A", "B", "C" }, "arrival order")

	local reqs = skynet.request()
	for i = 1, 5 do
		reqs:add { slave, "lua", "ping", i * 30, "S" .. i, token = i }
	end
	local tokens = {}
	for req in reqs:select(75) do
		tokens[#tokens + 1] = tostring(req.token)
	end
	T.seq(tokens, { "1", "2" }, "answered before the timeout")
	T.eq(reqs.timeout, true, "timeout flag")

	local quick = skynet.request { slave, "lua", "ping", 0, "Q" }
	for _ in quick:select(100) do
	end
	T.eq(quick.timeout, nil, "no timeout flag when everything answered")

	local errs, oks = 0, 0
	for _, resp in skynet.request { slave, "lua", "error" } { slave, "lua", "ping", 0, "P" }:select() do
		if resp then
			oks = oks + 1
		else
			errs = errs + 1
		end
	end
	T.eq(errs, 1, "an error answers false")
	T.eq(oks, 1, "the other answers")
end)
