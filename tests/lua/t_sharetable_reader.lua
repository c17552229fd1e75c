-- A reader service for t_sharetable.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local sharetable = require "skynet.sharetable"
local U = require "t_share_util"

local name = ...
local obj

local CMD = {}

function CMD.canon()
	return U.canon(obj)
end

function CMD.update()
	sharetable.update(name)
	return U.canon(obj)
end

function CMD.readall()
	local n = 0
	for _, v in pairs(obj) do
		n = n + 1
		if type(v) == "table" then
			for _, x in pairs(v) do
				n = n + (type(x) == "string" and #x or 1)
			end
		end
	end
	return n
end

skynet.start(function()
	obj = sharetable.query(name)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.ret(skynet.pack(CMD[cmd](...)))
	end)
end)
