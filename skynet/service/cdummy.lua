-- .cslave in single-node mode (core.md §12): keeps the global names.
local skynet = require "skynet"
require "skynet.manager"

local names = {}		-- global name -> handle
local waiting = {}		-- global name -> { response closures }
local harbor_service

local function passthrough(...)
	return ...
end

skynet.register_protocol {
	name = "harbor",
	id = skynet.PTYPE_HARBOR,
	pack = passthrough,
	unpack = skynet.tostring,
}

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = passthrough,
	unpack = skynet.tostring,
}

local command = {}

function command.REGISTER(name, handle)
	assert(names[name] == nil, "global name already registered")
	names[name] = handle
	local q = waiting[name]
	if q then
		waiting[name] = nil
		for _, resp in ipairs(q) do
			resp(true, handle)
		end
	end
	skynet.redirect(harbor_service, handle, "harbor", 0, "N " .. name)
end

function command.QUERYNAME(name)
	if name:sub(1, 1) == "." then
		skynet.ret(skynet.pack(skynet.localname(name)))
		return
	end
	local handle = names[name]
	if handle then
		skynet.ret(skynet.pack(handle))
		return
	end
	local q = waiting[name]
	if not q then
		q = {}
		waiting[name] = q
	end
	q[#q + 1] = skynet.response()
end

function command.LINK()
	skynet.ret()
end

function command.CONNECT()
	skynet.error "Can't connect to other harbor in single node mode"
	skynet.ret()
end

skynet.start(function()
	local harbor_id = tonumber(skynet.getenv "harbor")
	assert(harbor_id == 0)
	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = assert(command[cmd], cmd)
		f(...)
	end)
	skynet.dispatch("text", function()
		-- "Q name" notices from the harbor service: nothing to do
	end)
	harbor_service = assert(skynet.launch("harbor", harbor_id, skynet.self()))
end)
