-- launcher LOGLAUNCH: the new service's messages are logged under logpath
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local logpath = assert(skynet.getenv "logpath")
	local a = skynet.call(".launcher", "lua", "LOGLAUNCH", "snlua", "t_args", "logged")
	T.eq(math.type(a), "integer", "LOGLAUNCH returns the handle")
	T.eq(skynet.call(a, "lua"), "logged,1", "logged service works")
	skynet.sleep(2)
	local f = io.open(string.format("%s/%08x.log", logpath, a), "rb")
	if T.check(f ~= nil, "message log file exists") then
		local text = f:read "a"
		f:close()
		T.check(text:find("^open time: %d+ ") ~= nil, "log header: " .. text:sub(1, 40))
		T.check(text:find(string.format(":%08x 10 ", skynet.self()), 1, true) ~= nil, "lua request logged")
	end
end)
