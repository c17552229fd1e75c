-- clusterproxy: a local stand-in for a remote service (cluster.proxy(node, name)).
-- lua (and snax) requests to it are forwarded as they are, without unpacking, to the
-- node's clustersender: a send becomes a push, a call a request whose reply comes back
-- to the original caller. A failed call answers PTYPE_ERROR with the sender's reason.
local skynet = require "skynet"
local c = require "skynet.core"
require "skynet.manager"	-- skynet.forward_type

local node, address = ...

skynet.register_protocol {
	name = "system",
	id = skynet.PTYPE_SYSTEM,
	unpack = function(...) return ... end,
}

-- the message blocks are handed on (the sender frees them), not freed after dispatch
local forward_map = {
	[skynet.PTYPE_SNAX] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_LUA] = skynet.PTYPE_SYSTEM,
	[skynet.PTYPE_RESPONSE] = skynet.PTYPE_RESPONSE,
}

skynet.forward_type(forward_map, function()
	local clusterd = skynet.uniqueservice("clusterd")
	address = tonumber(address) or address
	local sender, err = skynet.call(clusterd, "lua", "sender", node)
	if not sender then
		error(err)
	end
	skynet.dispatch("system", function(session, source, msg, sz)
		if session == 0 then
			skynet.send(sender, "lua", "push", address, msg, sz)
		else
			local ok, rmsg, rsz = pcall(skynet.rawcall, sender, "lua", skynet.pack("req", address, msg, sz))
			if ok then
				skynet.ret(rmsg, rsz)
			else
				skynet.ignoreret()
				local reason = tostring(rmsg):gsub("^[^\n]-:%d+: ", ""):gsub("^call failed: ", "")
				c.send(source, skynet.PTYPE_ERROR, session, reason)
			end
		end
	end)
end)
