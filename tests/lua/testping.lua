-- upstream-style client of pingserver
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = function(m) return tostring(m) end,
	unpack = skynet.tostring,
}

T.run(function()
	local ps = skynet.newservice "pingserver"
	T.eq(skynet.localname ".pingserver", ps, "registered name")
	local replies = 0
	for i = 1, 10 do
		skynet.fork(function()
			if skynet.call(ps, "lua", "PING", "ping" .. i) == "ping" .. i then
				replies = replies + 1
			end
		end)
	end
	skynet.send(".pingserver", "lua", "PING", "nobody waits")
	skynet.sleep(50)
	T.eq(replies, 10, "ping replies")
	T.eq(skynet.call(".pingserver", "lua", "HITS"), 11, "hits")
	T.eq(skynet.call(ps, "text", "hello"), "HELLO", "text protocol")
	local ok = pcall(skynet.call, ps, "lua", "EXIT")
	T.eq(ok, false, "EXIT: call failed")
	skynet.sleep(2)
	T.eq(skynet.localname ".pingserver", nil, "name gone after exit")
end)
