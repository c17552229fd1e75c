-- Owner of the per-connection package services (sample.md 4.4).
--
-- lua request `fd`: launch "package <self> <fd>" once per fd and answer with its
-- address when the package reports SUCC (an error on FAIL). Later requests for a
-- known fd are answered at once. Text messages from packages: SUCC / FAIL / CLOSED.
local skynet = require "skynet"
require "skynet.manager"

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	unpack = skynet.tostring,
	pack = function(text) return text end,
}

local fd_addr = {}     -- fd -> package address
local addr_fd = {}     -- package address -> fd
local not_ready = {}   -- package address -> pending response closure

local function subscribe(fd)
	assert(type(fd) == "number", "fd must be a number")
	local addr = fd_addr[fd]
	if addr then
		return skynet.ret(skynet.pack(addr))
	end
	addr = assert(skynet.launch("package", skynet.self(), fd))
	fd_addr[fd] = addr
	addr_fd[addr] = fd
	not_ready[addr] = skynet.response()
end

local function ready(addr, ok)
	local resp = not_ready[addr]
	if resp then
		not_ready[addr] = nil
		if ok then
			resp(true, addr)
		else
			resp(false)
		end
	end
end

local function closed(addr)
	local fd = assert(addr_fd[addr], "unknown package")
	assert(fd_addr[fd] == addr)
	addr_fd[addr] = nil
	fd_addr[fd] = nil
	ready(addr, false)
end

skynet.info_func(function()
	local list = {}
	for addr, fd in pairs(addr_fd) do
		local status
		if not_ready[addr] then
			status = "NOTREADY"
		else
			local ok, s = pcall(skynet.call, addr, "text", "I")
			status = ok and s or "EXIT"
		end
		list[#list + 1] = { fd = fd, addr = skynet.address(addr), status = status }
	end
	return list
end)

skynet.start(function()
	skynet.dispatch("text", function(_, addr, cmd)
		if cmd == "SUCC" then
			ready(addr, true)
		elseif cmd == "FAIL" then
			ready(addr, false)
		elseif cmd == "CLOSED" then
			closed(addr)
		else
			skynet.error("Invalid command " .. cmd)
		end
	end)
	skynet.dispatch("lua", function(_, _, fd)
		subscribe(fd)
	end)
end)
