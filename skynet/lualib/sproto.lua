-- sproto: schema objects, encoding helpers and the RPC host (see docs/spec/sproto.md
-- section 6 and 7). The codec itself is the native module sproto.core.
local core = require "sproto.core"
local assert = assert

local sproto = {}
local host = {}

local weak = { __mode = "kv" }
local owned_mt = { __index = sproto }
local shared_mt = { __index = sproto }
local host_mt = { __index = host }

function owned_mt:__gc()
	core.deleteproto(self.__cobj)
end

local function wrap(cobj, mt)
	return setmetatable({
		__cobj = cobj,
		__tcache = setmetatable({}, weak),
		__pcache = setmetatable({}, weak),
	}, mt)
end

-- new(bundle): load a binary bundle; the C object is freed with the Lua object.
function sproto.new(bundle)
	return wrap(assert(core.newproto(bundle)), owned_mt)
end

-- sharenew(cobj): wrap a C object owned elsewhere (sprotoloader slots).
function sproto.sharenew(cobj)
	return wrap(cobj, shared_mt)
end

function sproto.parse(text)
	return sproto.new(require("sprotoparser").parse(text))
end

local function querytype(self, typename)
	local st = self.__tcache[typename]
	if not st then
		st = core.querytype(self.__cobj, typename)
		if not st then
			error("type " .. tostring(typename) .. " not found")
		end
		self.__tcache[typename] = st
	end
	return st
end

-- queryproto(name or tag) -> { name, tag, request, response }, cached both ways.
local function queryproto(self, key)
	local p = self.__pcache[key]
	if p then
		return p
	end
	local other, request, response = core.protocol(self.__cobj, key)
	if not other then
		error(tostring(key) .. " not found")
	end
	local name, tag = key, other
	if type(key) == "number" then
		name, tag = other, key
	end
	p = { name = name, tag = tag, request = request, response = response }
	self.__pcache[name] = p
	self.__pcache[tag] = p
	return p
end

sproto.queryproto = queryproto

function sproto:exist_type(typename)
	return self.__tcache[typename] ~= nil or core.querytype(self.__cobj, typename) ~= nil
end

function sproto:exist_proto(key)
	return self.__pcache[key] ~= nil or core.protocol(self.__cobj, key) ~= nil
end

function sproto:encode(typename, tbl)
	return core.encode(querytype(self, typename), tbl)
end

function sproto:decode(typename, ...)
	return core.decode(querytype(self, typename), ...)
end

function sproto:pencode(typename, tbl)
	return core.pack(core.encode(querytype(self, typename), tbl))
end

function sproto:pdecode(typename, ...)
	return core.decode(querytype(self, typename), core.unpack(...))
end

function sproto:request_encode(protoname, tbl)
	local p = queryproto(self, protoname)
	if p.request then
		return core.encode(p.request, tbl), p.tag
	end
	return "", p.tag
end

function sproto:response_encode(protoname, tbl)
	local p = queryproto(self, protoname)
	if p.response then
		return core.encode(p.response, tbl)
	end
	return ""
end

function sproto:request_decode(protoname, ...)
	local p = queryproto(self, protoname)
	if p.request then
		return (core.decode(p.request, ...)), p.name
	end
	return nil, p.name
end

function sproto:response_decode(protoname, ...)
	local p = queryproto(self, protoname)
	if p.response then
		return core.decode(p.response, ...)
	end
end

sproto.pack = core.pack
sproto.unpack = core.unpack

-- default(typename [, "REQUEST" | "RESPONSE"]) -> table of zero values.
function sproto:default(typename, which)
	if which == nil then
		return core.default(querytype(self, typename))
	end
	local p = queryproto(self, typename)
	if which == "REQUEST" then
		if p.request then
			return core.default(p.request)
		end
	elseif which == "RESPONSE" then
		if p.response then
			return core.default(p.response)
		end
	else
		error "Invalid type"
	end
end

-- RPC ------------------------------------------------------------------------------

function sproto:host(packagename)
	packagename = packagename or "package"
	return setmetatable({
		__proto = self,
		__package = assert(core.querytype(self.__cobj, packagename), "type package not found"),
		__session = {},
	}, host_mt)
end

-- One scratch header table, cleared before each use.
local header = {}

local function encode_header(package, tag, session, ud)
	header.type = tag
	header.session = session
	header.ud = ud
	return core.encode(package, header)
end

local function responder(self, response, session)
	return function(args, ud)
		local head = encode_header(self.__package, nil, session, ud)
		if response then
			return core.pack(head .. core.encode(response, args))
		end
		return core.pack(head)
	end
end

function host:dispatch(...)
	local bin = core.unpack(...)
	header.type = nil
	header.session = nil
	header.ud = nil
	local h, size = core.decode(self.__package, bin, header)
	local content = bin:sub(size + 1)
	if h.type then
		local p = queryproto(self.__proto, h.type)
		local request
		if p.request then
			request = core.decode(p.request, content)
		end
		if h.session then
			return "REQUEST", p.name, request, responder(self, p.response, h.session), h.ud
		end
		return "REQUEST", p.name, request, nil, h.ud
	end
	local session = assert(h.session, "session not found")
	local expected = assert(self.__session[session], "Unknown session")
	self.__session[session] = nil
	if expected == true then
		return "RESPONSE", session, nil, h.ud
	end
	return "RESPONSE", session, (core.decode(expected, content)), h.ud
end

-- attach(sp) -> send(name_or_tag, args, session, ud): requests to the peer schema sp.
function host:attach(sp)
	return function(name, args, session, ud)
		local p = queryproto(sp, name)
		local head = encode_header(self.__package, p.tag, session, ud)
		if session then
			self.__session[session] = p.response or true
		end
		if p.request then
			return core.pack(head .. core.encode(p.request, args))
		end
		return core.pack(head)
	end
end

return sproto
