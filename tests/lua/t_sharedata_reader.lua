-- A reader service for t_sharedata: queries one data set and answers questions on it.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local sharedata = require "skynet.sharedata"
local U = require "t_share_util"

local name = ...
local obj, held
local keep = {}

local CMD = {}

function CMD.canon()
	return U.canon(obj)
end

function CMD.get(...)
	local v = obj
	for _, k in ipairs { ... } do
		v = v[k]
	end
	if type(v) == "table" then
		return U.canon(v)
	end
	return v
end

function CMD.hold(k)
	held = obj[k]
	return true
end

function CMD.held(k)
	return pcall(function()
		return held[k]
	end)
end

-- touch every value (two levels), as a reader of a big table would
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

-- read while the set is being updated: every batch of reads between two yields must
-- come from one version; returns the inconsistent reads and the versions seen
function CMD.stress(rounds)
	local bad, seen, n = 0, {}, 0
	for i = 1, rounds do
		local v = obj.v
		local list = obj.list
		if list[1] ~= v or #list ~= 3 or list[3] ~= v + 2 or obj.tag ~= "v" .. v then
			bad = bad + 1
		end
		if not seen[v] then
			seen[v] = true
			n = n + 1
		end
		if i % 50 == 0 then
			skynet.yield()
		end
	end
	return bad, n
end

-- keep a private deep copy (for the memory comparison)
function CMD.copy()
	keep[#keep + 1] = sharedata.deepcopy(name)
	return true
end

skynet.start(function()
	obj = sharedata.query(name)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		skynet.ret(skynet.pack(CMD[cmd](...)))
	end)
end)
