-- skynet.cluster: calls and sends between skynet processes (nodes) over TCP, in
-- upstream's wire format (docs/spec/cluster.md). Upstream's API: call, send, open,
-- reload, proxy, snax, register, unregister, query; ours adds timeout_call and stat.
--
-- Design: `clusterd` (one per process) owns the node table, the listeners, names and
-- proxies; one `clustersender` per remote node owns the outgoing link, its sessions,
-- timeouts and heartbeats; one `clusteragent` per accepted link serves the peer's
-- requests. A service caches the sender of each node it talked to, so a call is one
-- message to the sender and one reply (no clusterd round trip after the first).
-- Failures raise "call failed: <reason>" (the reason names the node); an unknown
-- node raises at once (unless the cluster config says `__nowaiting = false`).
local skynet = require "skynet"
local core = require "skynet.cluster.core"

local clusterd
local cluster = {}
local sender = {}	-- node -> sender address (cached; a sender outlives address changes)
local pending = {}	-- node -> queued sends while the sender is looked up

local function get_sender(node)
	local s = sender[node]
	if s then
		return s
	end
	local err
	s, err = skynet.call(clusterd, "lua", "sender", node)
	if not s then
		error(err, 0)
	end
	sender[node] = s
	return s
end

cluster.get_sender = get_sender

function cluster.call(node, address, ...)
	local s = sender[node] or get_sender(node)
	return skynet.call(s, "lua", "req", address, skynet.pack(...))
end

-- ti: centiseconds (0 or nil: the config's cluster_timeout)
function cluster.timeout_call(ti, node, address, ...)
	local s = sender[node] or get_sender(node)
	local msg, sz = skynet.pack(...)
	return skynet.call(s, "lua", "req", address, msg, sz, ti)
end

local function flush_pending(node)
	local q = pending[node]
	local ok, s = pcall(get_sender, node)
	pending[node] = nil
	if not ok then
		-- q holds two entries (address, packed arguments) per message
		skynet.error(string.format("cluster.send to node [%s]: %d message(s) dropped: %s", node, #q // 2, s))
		return
	end
	for i = 1, #q, 2 do
		skynet.send(s, "lua", "push", q[i], skynet.unpack(q[i + 1]))
	end
end

-- One-way: never blocks. A send to a node whose sender is not known yet is queued
-- while clusterd is asked; failures (unknown or unreachable node, full queue) are
-- logged and counted by the sender, since there is nobody to raise them to. A send
-- to a sender that has more than `cluster_maxqueue` messages waiting raises an
-- overload error instead, so the sender's queue stays bounded.
local queuelen = core.queuelen
local maxqueue = tonumber(skynet.getenv "cluster_maxqueue") or 65536
local sends = 0

function cluster.send(node, address, ...)
	local s = sender[node]
	if s then
		sends = sends + 1
		if sends & 63 == 0 and (queuelen(s) or 0) > maxqueue then
			error(string.format("cluster.send to node [%s]: sender overloaded (%d messages queued, cluster_maxqueue is %d)",
				node, queuelen(s) or 0, maxqueue), 2)
		end
		return skynet.send(s, "lua", "push", address, skynet.pack(...))
	end
	local q = pending[node]
	if not q then
		q = {}
		pending[node] = q
		skynet.fork(flush_pending, node)
	end
	q[#q + 1] = address
	q[#q + 1] = skynet.packstring(...)
end

function cluster.open(port, maxclient)
	if type(port) == "string" then
		return skynet.call(clusterd, "lua", "listen", port, nil, maxclient)
	else
		return skynet.call(clusterd, "lua", "listen", "0.0.0.0", port, maxclient)
	end
end

function cluster.reload(config)
	skynet.call(clusterd, "lua", "reload", config)
end

function cluster.proxy(node, name)
	return skynet.call(clusterd, "lua", "proxy", node, name)
end

function cluster.snax(node, name, address)
	local snax = require "skynet.snax"
	if not address then
		address = cluster.call(node, ".service", "QUERY", "snaxd", name)
	end
	local handle = skynet.call(clusterd, "lua", "proxy", node, address)
	return snax.bind(handle, name)
end

function cluster.register(name, addr)
	assert(type(name) == "string")
	assert(addr == nil or type(addr) == "number")
	return skynet.call(clusterd, "lua", "register", name, addr)
end

function cluster.unregister(name)
	assert(type(name) == "string")
	return skynet.call(clusterd, "lua", "unregister", name)
end

function cluster.query(node, name)
	local s = sender[node] or get_sender(node)
	return skynet.call(s, "lua", "req", 0, skynet.pack(name))
end

-- Ours: the link state and counters of node's sender (connected, pending, sent,
-- dropped, timeouts, ...).
function cluster.stat(node)
	local s = sender[node] or get_sender(node)
	return skynet.call(s, "lua", "stat")
end

skynet.init(function()
	clusterd = skynet.uniqueservice("clusterd")
end)

return cluster
