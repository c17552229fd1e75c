-- skynet.datasheet.builder: publishes data sheets.
--
--   builder.new(name, v)      v: a table, or a document from builder.compile
--   builder.update(name, v)   a new version: every reader's tables change in place
--   builder.compile(v)        -> document (a string), to build once and publish later
--
-- A sheet is one string (see skynet.datasheet.dump) owned by this service and read in
-- place by every reader. The `datasheet` service (started here, found by readers with
-- skynet.service) counts who holds which version; a version's string is dropped once
-- it is replaced and nobody reads it any more.
local skynet = require "skynet"
local service = require "skynet.service"
local dump = require "skynet.datasheet.dump"
local core = require "skynet.datasheet.core"

local builder = {}
local address
local current = {}	-- name -> document
local alive = {}	-- pointer -> document (keeps every version readers may hold)
local serial = 0

-- Each version is a distinct string (so a distinct pointer), even with equal contents.
local function distinct(doc)
	serial = serial + 1
	return doc .. string.pack("<I4", serial)
end

local function publish(name, doc)
	local ptr = core.stringpointer(doc)
	alive[ptr] = doc
	skynet.call(address, "lua", "update", name, ptr)
	skynet.fork(function()
		skynet.call(address, "lua", "collect", ptr)	-- returns once nobody holds it
		alive[ptr] = nil
	end)
	return ptr
end

local function document(v)
	if type(v) == "string" then
		return v
	end
	return dump.dump(v)
end

function builder.new(name, v)
	assert(current[name] == nil, "datasheet: " .. tostring(name) .. " exists")
	local doc = distinct(document(v))
	current[name] = doc
	publish(name, doc)
end

function builder.update(name, v)
	local last = assert(current[name], "datasheet: no " .. tostring(name))
	local doc = distinct(dump.diff(last, document(v)))
	current[name] = doc
	publish(name, doc)
end

function builder.compile(v)
	return dump.dump(v)
end

local function datasheet_service()
	local skynet = require "skynet"

	local sheets = {}	-- name -> { handle = current, watchers = { [source] = response } }
	local handles = {}	-- handle -> { name = , holders = { [source] = true }, collector = response }
	local owned = {}	-- source -> { [handle] = true }

	local function retire(h)
		local rec = handles[h]
		if not rec or sheets[rec.name].handle == h or next(rec.holders) then
			return
		end
		if rec.collector then
			handles[h] = nil
			rec.collector(true)
		end
	end

	local function hold(source, h)
		handles[h].holders[source] = true
		local mine = owned[source]
		if not mine then
			mine = {}
			owned[source] = mine
		end
		mine[h] = true
	end

	local function unhold(source, h)
		local rec = handles[h]
		if rec then
			rec.holders[source] = nil
		end
		local mine = owned[source]
		if mine then
			mine[h] = nil
		end
		retire(h)
	end

	-- a reader is gone: everything it held goes
	local function close(source)
		local mine = owned[source]
		owned[source] = nil
		for _, sheet in pairs(sheets) do
			sheet.watchers[source] = nil
		end
		if mine then
			for h in pairs(mine) do
				unhold(source, h)
			end
		end
	end

	local CMD = {}

	-- from the builder: a new sheet, or a new version of one
	function CMD.update(source, name, h)
		handles[h] = { name = name, holders = {} }
		local sheet = sheets[name]
		if not sheet then
			sheets[name] = { handle = h, watchers = {} }
			skynet.ret()
			return
		end
		local last = sheet.handle
		sheet.handle = h
		local watchers = sheet.watchers
		sheet.watchers = {}
		local gone = {}
		for who, response in pairs(watchers) do
			hold(who, h)
			if not response(true, h) then
				gone[#gone + 1] = who
			end
		end
		for _, who in ipairs(gone) do
			close(who)
		end
		retire(last)
		skynet.ret()
	end

	function CMD.query(source, name)
		local sheet = sheets[name]
		if not sheet then
			error("datasheet: no " .. tostring(name))
		end
		hold(source, sheet.handle)
		skynet.ret(skynet.pack(sheet.handle))
	end

	-- from a reader: answer with the version after `h`
	function CMD.monitor(source, h)
		local rec = assert(handles[h], "datasheet: unknown handle")
		local sheet = sheets[rec.name]
		if sheet.handle ~= h then
			hold(source, sheet.handle)
			skynet.ret(skynet.pack(sheet.handle))
		else
			sheet.watchers[source] = skynet.response()
		end
	end

	function CMD.release(source, h)
		unhold(source, h)
	end

	function CMD.close(source)
		close(source)
	end

	-- from the builder: answers once `h` is replaced and nobody holds it
	function CMD.collect(source, h)
		local rec = assert(handles[h], "datasheet: unknown handle")
		rec.collector = skynet.response()
		retire(h)
	end

	skynet.dispatch("lua", function(_, source, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("datasheet: unknown command " .. tostring(cmd))
		end
		f(source, ...)
	end)

	skynet.info_func(function()
		local info = {}
		for name, sheet in pairs(sheets) do
			local versions = {}
			for h, rec in pairs(handles) do
				if rec.name == name then
					local n = 0
					for _ in pairs(rec.holders) do
						n = n + 1
					end
					versions[#versions + 1] = string.format("%s%s: %d readers",
						tostring(h), h == sheet.handle and " (current)" or "", n)
				end
			end
			table.sort(versions)
			info[name] = table.concat(versions, "; ")
		end
		return info
	end)
end

skynet.init(function()
	address = service.new("datasheet", datasheet_service)
end)

return builder
