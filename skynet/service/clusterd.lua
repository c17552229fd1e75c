-- clusterd: one per process (skynet.uniqueservice). Owns the node table (the file
-- named by the `cluster` config key, then cluster.reload), one clustersender per
-- remote node, the listeners and their clusteragents, cluster.register names and
-- clusterproxy services (docs/spec/cluster.md §3).
--
-- Node table entries: name = "host:port" (reachable), name = false (down); names
-- starting with "__" are options (`__nowaiting`). A sender is created on the first
-- use of a node and kept for the process's life; an address change is pushed to it
-- (changenode), so services that cached it stay right.
local skynet = require "skynet"
require "skynet.manager"
local core = require "skynet.cluster.core"
local socket = require "skynet.socket"
local c = require "skynet.core"

local config_name = skynet.getenv "cluster"
local nodename = core.nodename()

local node_address = {}	-- name -> "host:port" | false
local node_sender = {}	-- name -> sender address
local creating = {}	-- name -> { co... } while its sender starts
local waiting = {}	-- name -> { co... } waiting for the node to appear (__nowaiting = false)
local config = {}
local command = {}

local function split_address(address)
	local host, port = string.match(address, "^(.+):(%d+)$")
	return host, tonumber(port)
end

local function loadconfig(tmp)
	if tmp == nil then
		tmp = {}
		if config_name then
			local f = assert(io.open(config_name))
			local source = f:read "a"
			f:close()
			assert(load(source, "@" .. config_name, "t", tmp))()
		end
	end
	for name, address in pairs(tmp) do
		if name:sub(1, 2) == "__" then
			name = name:sub(3)
			config[name] = address
			skynet.error(string.format("Config %s = %s", name, address))
		else
			assert(address == false or type(address) == "string",
				"cluster node address must be \"host:port\" or false: " .. name)
			if address and not split_address(address) then
				error(string.format("cluster node [%s]: bad address %q (want \"host:port\")", name, address))
			end
			if node_address[name] ~= address then
				node_address[name] = address
				local s = node_sender[name]
				if s then
					local host, port = false, nil
					if address then
						host, port = split_address(address)
					end
					skynet.send(s, "lua", "changenode", host, port)
				end
			end
			local w = waiting[name]
			if w then
				waiting[name] = nil
				skynet.error(string.format("Cluster node [%s] resolved : %s", name, address))
				for _, co in ipairs(w) do
					skynet.wakeup(co)
				end
			end
		end
	end
	if config.nowaiting ~= false then
		-- waiting is only allowed with __nowaiting = false
		for name, w in pairs(waiting) do
			waiting[name] = nil
			for _, co in ipairs(w) do
				skynet.wakeup(co)
			end
		end
	end
end

function command.reload(source, tmp)
	loadconfig(tmp)
	skynet.ret(skynet.pack(nil))
end

-- The sender of node, or nil and the reason.
local function sender_of(node)
	if type(node) ~= "string" then
		return nil, "cluster node name must be a string, got " .. type(node)
	end
	local address = node_address[node]
	while address == nil and config.nowaiting == false do
		-- upstream's default: wait until a reload names the node
		local w = waiting[node]
		if not w then
			w = {}
			waiting[node] = w
			skynet.error("Waiting for cluster node [" .. node .. "]")
		end
		local co = coroutine.running()
		w[#w + 1] = co
		skynet.wait(co)
		address = node_address[node]
	end
	if address == nil then
		return nil, string.format("cluster node [%s] is absent", node)
	end
	local s = node_sender[node]
	if s then
		return s
	end
	if address == false then
		return nil, string.format("cluster node [%s] is down", node)
	end
	local w = creating[node]
	if w then
		local co = coroutine.running()
		w[#w + 1] = co
		skynet.wait(co)
		return node_sender[node] or nil, string.format("cluster node [%s]: sender failed to start", node)
	end
	w = {}
	creating[node] = w
	local host, port = split_address(address)
	local ok, s = pcall(skynet.newservice, "clustersender", node, nodename, host, port)
	creating[node] = nil
	if ok then
		node_sender[node] = s
	end
	for _, co in ipairs(w) do
		skynet.wakeup(co)
	end
	if not ok then
		return nil, string.format("cluster node [%s]: sender failed to start: %s", node, s)
	end
	-- the address may have changed while the sender started
	if node_address[node] ~= address then
		local a = node_address[node]
		local h, p = false, nil
		if a then
			h, p = split_address(a)
		end
		skynet.send(s, "lua", "changenode", h, p)
	end
	return s
end

function command.sender(source, node)
	skynet.ret(skynet.pack(sender_of(node)))
end

function command.senders(source)
	skynet.retpack(node_sender)
end

-- listeners and agents

local agents = {}	-- agent address -> fd
local nagents = 0

local function accept(maxclient, listen_desc)
	return function(fd, addr)
		if maxclient and nagents >= maxclient then
			skynet.error(string.format("cluster: refuse %s on %s (maxclient %d)", addr, listen_desc, maxclient))
			socket.close_fd(fd)
			return
		end
		skynet.error(string.format("socket accept from %s", addr))
		nagents = nagents + 1
		local ok, agent = pcall(skynet.newservice, "clusteragent", skynet.self(), fd, addr)
		if ok then
			agents[agent] = fd
		else
			nagents = nagents - 1
			skynet.error(string.format("cluster: agent for %s failed: %s", addr, agent))
			socket.close_fd(fd)
		end
	end
end

function command.listen(source, addr, port, maxclient)
	if port == nil then
		local address = assert(node_address[addr], addr .. " is down")
		addr, port = split_address(address)
		assert(port and port ~= 0, "cluster: bad listen address " .. address)
	end
	local ok, id, realaddr, realport = pcall(socket.listen, addr, port)
	if not ok or not id then
		error(string.format("cluster: listen on %s:%s failed: %s", addr, port, tostring(ok and realaddr or id)), 0)
	end
	skynet.error(string.format("cluster listen on %s:%d", realaddr or addr, realport or port))
	socket.start(id, accept(maxclient, string.format("%s:%d", addr, port)))
	skynet.ret(skynet.pack(realaddr or addr, realport or port))
end

function command.agentexit(source)
	if agents[source] then
		agents[source] = nil
		nagents = nagents - 1
	end
end

-- names

local register_name = {}

local function clearnamecache()
	for agent in pairs(agents) do
		skynet.send(agent, "lua", "namechange")
	end
end

function command.register(source, name, addr)
	assert(register_name[name] == nil, "cluster: name already registered: " .. tostring(name))
	addr = addr or source
	local old_name = register_name[addr]
	if old_name then
		register_name[old_name] = nil
		clearnamecache()
	end
	register_name[addr] = name
	register_name[name] = addr
	skynet.ret(nil)
	skynet.error(string.format("Register [%s] :%08x", name, addr))
end

function command.unregister(_, name)
	local addr = register_name[name]
	if not addr then
		return skynet.ret(nil)
	end
	register_name[addr] = nil
	register_name[name] = nil
	clearnamecache()
	skynet.ret(nil)
	skynet.error(string.format("Unregister [%s] :%08x", name, addr))
end

function command.queryname(source, name)
	skynet.ret(skynet.pack(register_name[name]))
end

-- proxies

local proxy = {}

function command.proxy(source, node, name)
	if name == nil then
		node, name = node:match "^([^@.]+)([@.].+)"
		if name == nil then
			error("Invalid name " .. tostring(node))
		end
	end
	local fullname = node .. "." .. tostring(name)
	local p = proxy[fullname]
	if p == nil then
		p = skynet.newservice("clusterproxy", node, name)
		if proxy[fullname] then
			skynet.kill(p)
			p = proxy[fullname]
		else
			proxy[fullname] = p
		end
	end
	skynet.ret(skynet.pack(p))
end

skynet.start(function()
	loadconfig()
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = command[cmd]
		local ok, err = true, nil
		if f then
			ok, err = pcall(f, source, ...)
		else
			ok, err = false, "clusterd: unknown command " .. tostring(cmd)
		end
		if not ok then
			-- the caller gets the reason ("call failed: <reason>"), not a bare failure
			err = tostring(err)
			skynet.error(err)
			if session ~= 0 then
				skynet.ignoreret()
				c.send(source, skynet.PTYPE_ERROR, session, err)
			end
		end
	end)
end)
