-- cslave: this node's side of a multi-node network (harbor.md §2), named .cslave by
-- bootstrap when `harbor` is not 0.
--
-- At start it listens on `address`, connects to the master (`master`), launches the
-- native harbor service, says H id address and reads W n: n nodes already up will
-- connect here, and start-up waits until they did (or went down). Later nodes are
-- announced by the master (C id address) and this side connects to them. Each link,
-- once its first byte (the peer's harbor id) is settled, belongs to the harbor service
-- ("S socket id" when we connected, "A socket id" when we accepted).
--
-- Global names: REGISTER tells the master (R), which tells every node (N); the harbor
-- service learns each binding as "N name" from the named handle. Names the harbor
-- does not know come back here as "Q name" and are asked of the master.
--
-- Lua requests (skynet.harbor): REGISTER name handle, QUERYNAME name, LINK id (returns
-- when node id goes down), CONNECT id (returns when it is connected), LINKMASTER
-- (returns when the master connection is lost).
local skynet = require "skynet"
local socket = require "skynet.socket"
local driver = require "skynet.socketdriver"
require "skynet.manager"

local harbor_id
local harbor_service
local master_fd

local links = {}       -- harbor id -> socket id while linked, false once down
local connecting = {}  -- harbor id -> true while socket.open runs
local names = {}       -- global name -> handle
local asking = {}      -- global name -> { responses } of QUERYNAME waiting for the master
local harbor_asking = {} -- global name -> true: the harbor holds messages for it (its Q)
local wait_up = {}     -- harbor id -> { responses } of CONNECT
local wait_down = {}   -- harbor id -> { responses } of LINK
local wait_master = {} -- responses of LINKMASTER
local master_down = false

local starting -- while waiting for the nodes already up: { expected = n, accepted = k, co = thread }

local function frame(...)
	local body = skynet.packstring(...)
	assert(#body <= 255, "master message too long")
	return string.char(#body) .. body
end

-- The next message from fd, unpacked: nothing when the connection ends; raises when
-- the bytes are not a message.
local function read_message(fd)
	local len = socket.read(fd, 1)
	local body = len and socket.read(fd, len:byte())
	if body then
		return skynet.unpack(body)
	end
end

local function wake(list, ...)
	if list then
		for _, resp in ipairs(list) do
			resp(...)
		end
	end
end

local function handshake_progress()
	local s = starting
	if s and s.accepted >= s.expected and s.co then
		local co = s.co
		s.co = nil
		skynet.wakeup(co)
	end
end

local function linked(id, fd)
	links[id] = fd
	local list = wait_up[id]
	wait_up[id] = nil
	wake(list, true)
end

local function gone(id)
	if links[id] == false then
		return
	end
	if starting and links[id] == nil then
		-- One of the nodes we were told to wait for will never come.
		starting.expected = starting.expected - 1
		handshake_progress()
	end
	links[id] = false
	local up, down = wait_up[id], wait_down[id]
	wait_up[id], wait_down[id] = nil, nil
	wake(down, true)
	wake(up, false)
end

local function bind_name(name, handle)
	names[name] = handle
	harbor_asking[name] = nil
	skynet.redirect(harbor_service, handle, "harbor", 0, "N " .. name)
	local list = asking[name]
	asking[name] = nil
	if list then
		for _, resp in ipairs(list) do
			resp(true, handle)
		end
	end
end

local function connect_node(id, address)
	if links[id] ~= nil or connecting[id] or id == harbor_id then
		return
	end
	connecting[id] = true
	local ok, fd = pcall(socket.open, address)
	connecting[id] = nil
	if not ok or not fd then
		skynet.error("Can't connect to " .. tostring(address))
		return
	end
	if links[id] ~= nil then -- went down (or linked) meanwhile
		socket.close(fd)
		return
	end
	driver.nodelay(fd)
	skynet.error(string.format("Connect to harbor %d (fd=%d), %s", id, fd, address))
	socket.abandon(fd)
	skynet.send(harbor_service, "harbor", string.format("S %d %d", fd, id))
	linked(id, fd)
end

local function accept_node(fd, addr)
	skynet.error(string.format("New connection (fd = %d, %s)", fd, addr))
	socket.start(fd)
	driver.nodelay(fd)
	local b = socket.read(fd, 1)
	if not b then
		skynet.error(string.format("Connection (fd =%d) closed", fd))
		socket.close(fd)
		return
	end
	local id = b:byte()
	if id == 0 or id == harbor_id or links[id] ~= nil then
		skynet.error(string.format("Slave %d exist (fd =%d)", id, fd))
		socket.close(fd)
		return
	end
	socket.abandon(fd)
	skynet.error(string.format("Harbor %d connected (fd = %d)", id, fd))
	skynet.send(harbor_service, "harbor", string.format("A %d %d", fd, id))
	linked(id, fd)
	if starting then
		starting.accepted = starting.accepted + 1
		handshake_progress()
	end
end

local function watch_master()
	while true do
		local ok, t, a, b = pcall(read_message, master_fd)
		if not ok then
			skynet.error("Invalid master message: " .. tostring(t))
			break
		elseif t == nil then
			break
		end
		if t == "C" and math.type(a) == "integer" and type(b) == "string" then
			skynet.fork(connect_node, a, b)
		elseif t == "N" and type(a) == "string" and math.type(b) == "integer" then
			bind_name(a, b)
		elseif t == "D" and math.type(a) == "integer" then
			gone(a)
			-- The harbor drops the link (if any) and errors what waits on it.
			skynet.send(harbor_service, "harbor", "D " .. a)
		else
			skynet.error("Invalid master message " .. tostring(t))
		end
	end
	skynet.error "Master disconnect"
	master_down = true
	socket.close(master_fd)
	local list = wait_master
	wait_master = {}
	wake(list, true)
	-- Nobody can answer these any more.
	local q = asking
	asking = {}
	for _, list in pairs(q) do
		wake(list, false)
	end
	-- Nor resolve the names the harbor holds messages for: it drops them (ERROR to
	-- the callers) instead of keeping them forever.
	local h = harbor_asking
	harbor_asking = {}
	for name in pairs(h) do
		skynet.send(harbor_service, "harbor", "F " .. name)
	end
	if starting then
		starting.expected = 0
		handshake_progress()
	end
end

skynet.register_protocol {
	name = "harbor",
	id = skynet.PTYPE_HARBOR,
	pack = function(...) return ... end,
	unpack = skynet.tostring,
}

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = function(...) return ... end,
	unpack = skynet.tostring,
}

local command = {}

function command.REGISTER(name, handle)
	assert(names[name] == nil, "global name already registered")
	bind_name(name, handle)
	socket.write(master_fd, frame("R", name, handle))
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
	if master_down then
		error("no master to query global name " .. name)
	end
	local list = asking[name]
	if list == nil then
		list = {}
		asking[name] = list
		socket.write(master_fd, frame("Q", name))
	end
	list[#list + 1] = skynet.response()
end

local function wait_on(lists, id)
	local list = lists[id]
	if list == nil then
		list = {}
		lists[id] = list
	end
	list[#list + 1] = skynet.response()
end

function command.LINK(id)
	if links[id] then
		wait_on(wait_down, id)
	else
		skynet.ret()
	end
end

function command.CONNECT(id)
	if links[id] then
		skynet.ret()
	elseif links[id] == false then
		error(string.format("harbor %d is down", id))
	else
		wait_on(wait_up, id)
	end
end

function command.LINKMASTER()
	if master_down then
		skynet.ret()
	else
		wait_master[#wait_master + 1] = skynet.response()
	end
end

-- Notices from the harbor service: "Q name" (an unknown global name), "D id" (the
-- link to node id is gone).
local function harbor_notice(_, _, text)
	local t, arg = text:sub(1, 1), text:sub(3)
	if t == "Q" then
		local handle = names[arg]
		if handle then
			skynet.redirect(harbor_service, handle, "harbor", 0, "N " .. arg)
		elseif master_down then
			skynet.send(harbor_service, "harbor", "F " .. arg)
		else
			harbor_asking[arg] = true
			socket.write(master_fd, frame("Q", arg))
		end
	elseif t == "D" then
		local id = tonumber(arg)
		if id then
			gone(id)
		end
	else
		skynet.error("Unknown command " .. text)
	end
end

skynet.start(function()
	harbor_id = assert(tonumber(skynet.getenv "harbor"))
	local master_addr = assert(skynet.getenv "master", "config key master is missing")
	local address = assert(skynet.getenv "address", "config key address is missing")
	local listen = assert(socket.listen(address), "Can't listen on " .. address)
	skynet.error("slave connect to master " .. master_addr)
	master_fd = assert(socket.open(master_addr), "Can't connect to master")
	driver.nodelay(master_fd)

	skynet.dispatch("lua", function(_, _, cmd, ...)
		local f = command[cmd]
		if not f then
			error("cslave: unknown command " .. tostring(cmd))
		end
		f(...)
	end)
	skynet.dispatch("text", harbor_notice)
	harbor_service = assert(skynet.launch("harbor", harbor_id, skynet.self()))

	socket.write(master_fd, frame("H", harbor_id, address))
	local ok, t, n = pcall(read_message, master_fd)
	if ok and t == nil then
		-- The master closes the connection when it refuses us (an id that registered
		-- before, also one that went down since); the reason is in the master's log.
		error(string.format("slave shakehand failed: the master closed the connection (harbor %d already registered?)", harbor_id))
	elseif not ok or t ~= "W" or math.type(n) ~= "integer" then
		error("slave shakehand failed: " .. tostring(t))
	end
	skynet.error(string.format("Waiting for %d harbors", n))
	starting = { expected = n, accepted = 0 }
	skynet.fork(watch_master)
	if n > 0 then
		socket.start(listen, accept_node)
		if starting.accepted < starting.expected then
			starting.co = coroutine.running()
			skynet.wait(starting.co)
		end
	end
	starting = nil
	socket.close(listen)
	skynet.error "Shakehand ready"
end)
