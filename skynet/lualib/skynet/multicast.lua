-- skynet.multicast: publish/subscribe channels (contract: services.md "Multicast").
--
--   local mc = require "skynet.multicast"
--   local ch = mc.new { dispatch = function(ch, source, ...) end }  -- a new channel
--   local ch = mc.new { channel = id, dispatch = f }   -- an existing one, by id
--   ch:subscribe()  ch:publish(...)  ch:unsubscribe()  ch:delete()   ch.channel: the id
--
-- Channels live in the multicastd service (one per node, a uniqueservice). A publish
-- packs the values once into a reference-counted package (skynet.multicast.core) and
-- calls multicastd, which sends every subscribing service the package's address as a
-- PTYPE_MULTICAST message whose session is the channel id. Each subscriber unpacks
-- the shared bytes and closes its reference; the last close frees them.
-- conf.pack / conf.unpack replace skynet.pack / skynet.unpack for one channel object.
local skynet = require "skynet"
local core = require "skynet.multicast.core"

local service		-- multicastd's address, known once skynet.init has run
local listening = {}	-- channel id -> the channel object subscribed in this service

local multicast = {}

local channel = {}
local channel_mt = {
	__index = channel,
	__tostring = function(self)
		return string.format("[Multicast:%x]", self.channel)
	end,
	-- a collected (or, at exit, closed) subscription tells multicastd
	__gc = function(self)
		self:unsubscribe()
	end,
}

function multicast.new(conf)
	assert(service, "skynet.multicast: the service has not started yet (require it before skynet.start)")
	conf = conf or {}
	local id = conf.channel
	if id == nil then
		id = skynet.call(service, "lua", "NEW")
	end
	return setmetatable({
		channel = id,
		__pack = conf.pack or skynet.pack,
		__unpack = conf.unpack or skynet.unpack,
		__dispatch = conf.dispatch,
	}, channel_mt)
end

function channel:publish(...)
	local id = assert(self.channel, "channel deleted")
	skynet.call(service, "lua", "PUB", id, core.pack(self.__pack(...)))
end

function channel:subscribe()
	local id = assert(self.channel, "channel deleted")
	if self.__subscribe then
		return
	end
	skynet.call(service, "lua", "SUB", id)
	self.__subscribe = true
	listening[id] = self
end

-- Deliveries already on their way are dropped (and their references closed) when
-- they arrive; multicastd sends no more once it has this request.
function channel:unsubscribe()
	if not self.__subscribe then
		return
	end
	local id = self.channel
	self.__subscribe = nil
	if listening[id] == self then
		listening[id] = nil
	end
	skynet.send(service, "lua", "USUB", id)
end

function channel:delete()
	local id = assert(self.channel, "channel deleted")
	skynet.send(service, "lua", "DEL", id)
	if listening[id] == self then
		listening[id] = nil
	end
	self.__subscribe = nil
	self.channel = nil
end

local function deliver(self, source, msg, sz)
	return self.__dispatch(self, source, self.__unpack(msg, sz))
end

-- session = channel id; nothing is answered
local function on_multicast(id, source, package, msg, sz)
	skynet.ignoreret()
	local self = listening[id]
	if self == nil then
		-- unsubscribed (or deleted) while this delivery was on its way
		core.close(package)
		return
	end
	local ok, err = pcall(deliver, self, source, msg, sz)
	core.close(package)
	if not ok then
		error(err, 0)
	end
end

skynet.init(function()
	service = skynet.uniqueservice "multicastd"
	skynet.register_protocol {
		name = "multicast",
		id = skynet.PTYPE_MULTICAST,
		unpack = core.unpack,
		dispatch = on_multicast,
	}
end)

return multicast
