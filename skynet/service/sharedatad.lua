-- sharedatad: the one service that builds and versions the data sets of skynet.sharedata.
--
-- Each name maps to the current version: a pointer (light userdata) to data held in
-- Rust, built once and shared read-only by every service of the process. Commands
-- (lua protocol, upstream's names and arguments):
--   new(name, value, ...)     value: a table, Lua source, "@filename", or nil ({})
--   update(name, value, ...)  a new version; watchers get it, the old one is released
--   delete(name)              watchers get nil
--   query(name) -> pointer    a reference is taken for the caller
--   confirm(pointer)          (send) gives back a reference a query/monitor took
--   monitor(name, pointer)    answers with the next version (a reference taken for the
--                             caller) or nil once the name is deleted
--
-- A version is freed as soon as nobody holds it: this service drops its own hold when
-- the version is replaced or deleted, and readers drop theirs when they move on.
local skynet = require "skynet"
local core = require "skynet.sharedata.core"
-- Data files change between versions: compile them afresh instead of keeping every
-- version in the process-wide code cache.
require("skynet.codecache").mode "OFF"

local sets = {}	-- name -> { ptr = current pointer, watchers = { response, ... }, limit = n }

local function source_value(name, source, ...)
	local kind = type(source)
	if kind == "table" then
		return source
	elseif kind == "nil" then
		return {}
	elseif kind ~= "string" then
		error(string.format("sharedata %s: can't build from a %s", name, kind))
	end
	-- Lua source (or a file): its globals, or the table it returns
	local env = setmetatable({}, { __index = _ENV })
	local chunk, err
	if source:sub(1, 1) == "@" then
		chunk, err = loadfile(source:sub(2), "bt", env)
	else
		chunk, err = load(source, "=" .. name, "bt", env)
	end
	if not chunk then
		error(err)
	end
	local ret = chunk(...)
	setmetatable(env, nil)
	if type(ret) == "table" then
		return ret
	end
	return env
end

local function build(name, source, ...)
	return core.new(source_value(name, source, ...))
end

-- Hand `ptr` to every waiting watcher (nil: the name is gone).
local function notify(watchers, ptr)
	for i = 1, #watchers do
		local response = watchers[i]
		watchers[i] = nil
		if ptr then
			core.incref(ptr)
			if not response(true, ptr) then
				core.decref(ptr)	-- that reader is gone
			end
		else
			response(true)
		end
	end
end

-- Forget watchers whose service is gone, when the list has grown.
local function prune(set)
	local w = set.watchers
	if #w <= set.limit then
		return
	end
	local alive = {}
	for i = 1, #w do
		if w[i] "TEST" then
			alive[#alive + 1] = w[i]
		end
	end
	set.watchers = alive
	set.limit = math.max(16, #alive * 2)
end

local CMD = {}

function CMD.new(name, source, ...)
	assert(sets[name] == nil, "sharedata: " .. tostring(name) .. " exists")
	sets[name] = { ptr = build(name, source, ...), watchers = {}, limit = 16 }
end

function CMD.update(name, source, ...)
	local old = sets[name]
	local ptr = build(name, source, ...)
	if not old then
		sets[name] = { ptr = ptr, watchers = {}, limit = 16 }
		return
	end
	local previous = old.ptr
	old.ptr = ptr
	core.markdirty(previous)	-- readers using upstream's corelib look for this
	local watchers = old.watchers
	old.watchers = {}
	notify(watchers, ptr)
	core.delete(previous)	-- our hold; freed once the last reader lets go
end

function CMD.delete(name)
	local set = assert(sets[name], "sharedata: no " .. tostring(name))
	sets[name] = nil
	core.markdirty(set.ptr)
	notify(set.watchers, nil)
	core.delete(set.ptr)
end

function CMD.query(name)
	local set = sets[name]
	if not set then
		error("sharedata: no " .. tostring(name))
	end
	core.incref(set.ptr)
	return set.ptr
end

function CMD.confirm(ptr)
	core.decref(ptr)
end

function CMD.monitor(name, ptr)
	local set = sets[name]
	if not set then
		return nil	-- deleted meanwhile
	end
	if set.ptr ~= ptr then
		core.incref(set.ptr)
		return set.ptr
	end
	prune(set)
	local w = set.watchers
	w[#w + 1] = skynet.response()
	return false	-- answered later
end

local NORET = { confirm = true }

skynet.start(function()
	skynet.dispatch("lua", function(session, source, cmd, ...)
		local f = CMD[cmd]
		if not f then
			error("sharedatad: unknown command " .. tostring(cmd))
		end
		local r = f(...)
		if NORET[cmd] or r == false then
			return
		end
		skynet.ret(skynet.pack(r))
	end)
	skynet.info_func(function()
		local info = {}
		for name, set in pairs(sets) do
			info[name] = { refs = core.getref(set.ptr), watchers = #set.watchers }
		end
		return info
	end)
end)
