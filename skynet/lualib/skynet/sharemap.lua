-- skynet.sharemap: a table one service writes and others read, encoded with a sproto
-- type and shared through skynet.stm (contract: services.md "sharemap").
--
--   sharemap.register "types.sp"              -- once per process: the schema (slot 0)
--   local w = sharemap.writer("T", { x = 1 }) -- w.x = 2 ... w:commit()
--   skynet.call(peer, "lua", "init", "T", w:copy())  -- one copy per reader
--   local r = sharemap.reader("T", copy)      -- r.x; r:update() -> true when changed
--
-- A writer's fields are its table's; commit publishes them as a new version. A
-- reader's fields are those of the version it last decoded (read-only); update
-- decodes the newest version, if there is a newer one, into the same table
-- (returning true, that table, the bytes decoded; false when nothing changed).
local stm = require "skynet.stm"
local sprotoloader = require "sprotoloader"

local SLOT = 0

local sharemap = {}

local schema_cache
local function schema()
	if schema_cache == nil then
		schema_cache = sprotoloader.load(SLOT)
	end
	return schema_cache
end

function sharemap.register(protofile)
	sprotoloader.register(protofile, SLOT)
end

-- proxy -> { typename, stm object, data table }
local state = setmetatable({}, { __mode = "k" })

local writer_api = {}

function writer_api:commit()
	local s = state[self]
	s.obj(schema():encode(s.typename, s.data))
end

function writer_api:copy()
	return stm.copy(state[self].obj)
end

local writer_mt = {
	__index = function(self, k)
		local m = writer_api[k]
		if m ~= nil then
			return m
		end
		return state[self].data[k]
	end,
	__newindex = function(self, k, v)
		state[self].data[k] = v
	end,
	__pairs = function(self)
		return next, state[self].data, nil
	end,
}

function sharemap.writer(typename, data)
	data = data or {}
	local proxy = setmetatable({}, writer_mt)
	state[proxy] = {
		typename = typename,
		obj = stm.new(schema():encode(typename, data)),
		data = data,
	}
	return proxy
end

local reader_api = {}

local function decode_into(msg, sz, s)
	local data = s.data
	for k in pairs(data) do
		data[k] = nil
	end
	return schema():decode(s.typename, msg, sz, data)
end

-- false when nothing changed; else true, the fields' table, the bytes decoded
function reader_api:update()
	local s = state[self]
	return s.obj(decode_into, s)
end

local reader_mt = {
	__index = function(self, k)
		local m = reader_api[k]
		if m ~= nil then
			return m
		end
		return state[self].data[k]
	end,
	__newindex = function(_, k)
		error("sharemap reader is read-only (field " .. tostring(k) .. ")", 2)
	end,
	__pairs = function(self)
		return next, state[self].data, nil
	end,
}

function sharemap.reader(typename, copy)
	local s = {
		typename = typename,
		obj = stm.newcopy(copy),
		data = {},
	}
	s.obj(decode_into, s)
	local proxy = setmetatable({}, reader_mt)
	state[proxy] = s
	return proxy
end

return sharemap
