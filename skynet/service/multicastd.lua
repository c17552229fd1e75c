-- multicastd: the channels of skynet.multicast on this node (contract: services.md
-- "Multicast"). Requests (lua protocol), answered only when they carry a session:
--   NEW -> id        a new channel; ids keep the node's harbor id in their low 8 bits
--   SUB id           the caller receives the channel's publishes
--   USUB id          it no longer does
--   PUB id pkg sz    deliver a package made by skynet.multicast.core.pack
--   DEL id           forget the channel (deliveries already sent still arrive)
-- Between nodes (harbor mode; upstream's protocol, so mixed nodes work): each node's
-- multicastd is in the datacenter under ("multicast", harbor id). A channel lives on
-- the node in its id's low 8 bits (its owner). A node whose services subscribe to a
-- remote channel keeps a local copy of it (its subscribers) and is subscribed once at
-- the owner (SUBR id, answered true when the channel does not exist); when its last
-- subscriber leaves it tells the owner USUBR id. A publish goes to the owner, which
-- sends the packed bytes to each subscribed node as a PTYPE_MULTICAST message (session
-- = channel id, source = publisher) and delivers locally; each node delivers to its
-- own subscribers. DEL goes to the owner, which sends DELR id to the subscribed nodes.
local skynet = require "skynet"
local core = require "skynet.multicast.core"
local datacenter = require "skynet.datacenter"

local node = skynet.harbor(skynet.self())

-- id -> { count = local subscribers, members = { [address] = true },
--         nodes = { [harbor id] = true } (remote subscribers, owner side only) }
local channels = {}
local last_id = nil

local function owner(id)
	return id % 256
end

-- The multicastd of another node, looked up once.
local peers = setmetatable({}, {
	__index = function(t, n)
		local addr = datacenter.get("multicast", n)
		if not addr then
			error(string.format("multicast: no multicastd on node %d", n))
		end
		t[n] = addr
		return addr
	end,
})

local command = {}

function command.NEW()
	local id = last_id and core.nextid(last_id) or node
	while channels[id] do
		id = core.nextid(id)
	end
	last_id = id
	channels[id] = { count = 0, members = {} }
	return id
end

function command.DEL(_, id)
	local n = owner(id)
	if n ~= node then
		skynet.send(peers[n], "lua", "DEL", id)
		return
	end
	local ch = channels[id]
	channels[id] = nil
	if ch and ch.nodes then
		for peer in pairs(ch.nodes) do
			skynet.send(peers[peer], "lua", "DELR", id)
		end
	end
end

-- From the owner: its channel is gone.
function command.DELR(_, id)
	channels[id] = nil
end

-- From another node's multicastd: that node has subscribers to our channel `id`.
function command.SUBR(source, id)
	local ch = channels[id]
	if ch == nil then
		return true
	end
	local n = skynet.harbor(source)
	if n == node or owner(id) ~= node then
		error(string.format("multicast: SUBR %d from :%08x", id, source))
	end
	ch.nodes = ch.nodes or {}
	ch.nodes[n] = true
end

function command.USUBR(source, id)
	local ch = channels[id]
	if ch and ch.nodes then
		ch.nodes[skynet.harbor(source)] = nil
	end
end

function command.SUB(source, id)
	local n = owner(id)
	if n ~= node and channels[id] == nil then
		if skynet.call(peers[n], "lua", "SUBR", id) then
			return -- no such channel
		end
		-- Another SUB may have made it while the call was waiting.
		channels[id] = channels[id] or { count = 0, members = {} }
	end
	local ch = channels[id]
	if ch and not ch.members[source] then
		ch.members[source] = true
		ch.count = ch.count + 1
	end
end

local function leave(ch, id)
	ch.count = ch.count - 1
	local n = owner(id)
	if ch.count == 0 and n ~= node then
		channels[id] = nil
		skynet.send(peers[n], "lua", "USUBR", id)
	end
end

function command.USUB(source, id)
	local ch = channels[id]
	if ch and ch.members[source] then
		ch.members[source] = nil
		leave(ch, id)
	end
end

-- One package, ch.count references, one delivery per local subscriber; the owner also
-- sends a copy of the bytes to each subscribed node. A subscriber that no longer
-- exists gives its reference back here and leaves the channel.
local function publish(id, source, package, sz)
	local ch = channels[id]
	if ch and ch.nodes and next(ch.nodes) then
		-- Another node gets the bytes, never this process's package address.
		local _, msg, len = core.unpack(package, sz)
		local bytes = skynet.tostring(msg, len)
		for n in pairs(ch.nodes) do
			skynet.redirect(peers[n], source, "multicast", id, bytes)
		end
	end
	if ch == nil or ch.count == 0 then
		core.close(core.bind(package, 1))
		return
	end
	local delivery = skynet.tostring(package, sz)
	package = core.bind(package, ch.count)
	for addr in pairs(ch.members) do
		if not skynet.redirect(addr, source, "multicast", id, delivery) then
			ch.members[addr] = nil
			core.close(package)
			leave(ch, id)
		end
	end
end

function command.PUB(source, id, package, sz)
	local n = owner(id)
	if n ~= node then
		-- The owner fans it out (back to this node too, if it has subscribers here).
		skynet.redirect(peers[n], source, "multicast", id, core.remote(package))
		return
	end
	publish(id, source, package, sz)
end

-- A publish forwarded by another node's multicastd: a copy of its bytes, delivered
-- (and, on the owner, passed on to the other subscribed nodes).
skynet.register_protocol {
	name = "multicast",
	id = skynet.PTYPE_MULTICAST,
	unpack = core.packremote,
	dispatch = function(id, source, package, sz)
		skynet.ignoreret()
		publish(id, source, package, sz)
	end,
}

skynet.start(function()
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = command[cmd]
		if f == nil then
			error("multicastd: unknown command " .. tostring(cmd))
		end
		local r = f(source, ...)
		if session ~= 0 then
			skynet.retpack(r)
		end
	end)
	datacenter.set("multicast", node, skynet.self())
end)
