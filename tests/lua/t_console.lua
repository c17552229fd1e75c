-- console with stdin at EOF / unusable must not disturb anything
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
T.run(function()
	local c = skynet.newservice "console"
	T.eq(math.type(c), "integer", "console launched")
	skynet.sleep(20)
	T.eq(skynet.call(".launcher", "lua", "LIST")[skynet.address(c)], "snlua console", "console still alive")
	local p = skynet.newservice "t_args"
	T.eq(skynet.call(p, "lua"), ",0", "services still work")
end)
