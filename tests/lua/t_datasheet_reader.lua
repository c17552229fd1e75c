-- A reader service for t_datasheet.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local datasheet = require "skynet.datasheet"
local U = require "t_share_util"

local name = ...
local obj, held

local CMD = {}

function CMD.canon()
	return U.canon(obj)
end

function CMD.get(k)
	local v = obj[k]
	if type(v) == "table" then
		return U.canon(v)
	end
	return v
end

function CMD.hold(k)
	held = obj[k]
	return true
end

function CMD.held()
	return pcall(U.canon, held)
end

function CMD.exit()
	skynet.timeout(0, skynet.exit)
	return true
end

skynet.start(function()
	obj = datasheet.query(name)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.ret(skynet.pack(CMD[cmd](...)))
	end)
end)
