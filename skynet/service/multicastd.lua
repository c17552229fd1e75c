-- multicastd: the channels of skynet.multicast on this node (contract: services.md
-- "Multicast"). Requests (lua protocol), answered only when they carry a session:
--   NEW -> id        a new channel; ids keep the node's harbor id in their low 8 bits
--   SUB id           the caller receives the channel's publishes
--   USUB id          it no longer does
--   PUB id pkg sz    deliver a package made by skynet.multicast.core.pack
--   DEL id           forget the channel (deliveries already sent still arrive)
-- Only this node's channels exist (harbor = 0): multi-node multicast is not supported.
local skynet = require "skynet"
local core = require "skynet.multicast.core"

local node = skynet.harbor(skynet.self())

-- id -> { count = subscribers, members = { [address] = true } }
local channels = {}
local last_id = nil

local function local_channel(id)
	if id % 256 ~= node then
		error(string.format("multicast channel %d belongs to node %d: multi-node multicast is not supported", id, id % 256))
	end
	return channels[id]
end

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
	local_channel(id)
	channels[id] = nil
end

function command.SUB(source, id)
	local ch = local_channel(id)
	if ch and not ch.members[source] then
		ch.members[source] = true
		ch.count = ch.count + 1
	end
end

function command.USUB(source, id)
	local ch = channels[id]
	if ch and ch.members[source] then
		ch.members[source] = nil
		ch.count = ch.count - 1
	end
end

-- One package, ch.count references, one delivery per subscriber. A subscriber that no
-- longer exists gives its reference back here and leaves the channel.
local function publish(id, source, package, sz)
	local ch = channels[id]
	if ch == nil or ch.count == 0 then
		core.close(core.bind(package, 1))
		return
	end
	local delivery = skynet.tostring(package, sz)
	package = core.bind(package, ch.count)
	for addr in pairs(ch.members) do
		if not skynet.redirect(addr, source, "multicast", id, delivery) then
			ch.members[addr] = nil
			ch.count = ch.count - 1
			core.close(package)
		end
	end
end

function command.PUB(source, id, package, sz)
	if id % 256 ~= node then
		core.close(core.bind(package, 1))
	end
	local_channel(id)
	publish(id, source, package, sz)
end

-- Messages of this type reach multicastd only from another node: unsupported, but
-- their bytes are delivered to the local subscribers all the same.
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
end)
