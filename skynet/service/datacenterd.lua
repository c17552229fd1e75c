-- DATACENTER: a tree of values addressed by key paths.
--   QUERY(k1, k2, ...)          -> value or nil
--   UPDATE(k1, ..., kn, value)  -> previous value; a first set wakes WAITers
--   WAIT(k1, k2, ...)           -> value, blocking until it is set
local skynet = require "skynet"

local database = {}
local waiters = {}	-- same shape as database; leaves are { responses... }, marked LEAF
local LEAF = {}

local command = {}

function command.QUERY(key, ...)
	local node = database[key]
	for i = 1, select("#", ...) do
		if type(node) ~= "table" then
			return nil
		end
		node = node[(select(i, ...))]
	end
	return node
end

local function set(node, n, path, value)
	for i = 1, n - 1 do
		local k = path[i]
		local child = node[k]
		if child == nil then
			child = {}
			node[k] = child
		end
		node = child
	end
	local old = node[path[n]]
	node[path[n]] = value
	return old
end

-- Detach the waiters registered exactly at `path`; waiters below a path that now
-- holds a plain value can never be satisfied: fail them.
local function take_waiters(path, n)
	local node = waiters
	for i = 1, n - 1 do
		node = node[path[i]]
		if node == nil or node[LEAF] then
			return
		end
	end
	local q = node[path[n]]
	if q == nil then
		return
	end
	node[path[n]] = nil
	if q[LEAF] then
		return q
	end
	local function fail(t)
		for k, v in pairs(t) do
			if k ~= LEAF then
				if v[LEAF] then
					for _, resp in ipairs(v) do
						resp(false)
					end
				else
					fail(v)
				end
			end
		end
	end
	fail(q)
end

function command.UPDATE(...)
	local n = select("#", ...) - 1
	assert(n >= 1, "UPDATE needs a key and a value")
	local path = { ... }
	local value = path[n + 1]
	local old = set(database, n, path, value)
	if old == nil and value ~= nil then
		local q = take_waiters(path, n)
		if q then
			for _, resp in ipairs(q) do
				resp(true, value)
			end
		end
	end
	return old
end

local function wait(...)
	local n = select("#", ...)
	local node = waiters
	for i = 1, n - 1 do
		local k = (select(i, ...))
		local child = node[k]
		if child == nil then
			child = {}
			node[k] = child
		end
		assert(not child[LEAF], "can't wait on a branch of a waited leaf")
		node = child
	end
	local k = (select(n, ...))
	local q = node[k]
	if q == nil then
		q = { [LEAF] = true }
		node[k] = q
	end
	assert(q[LEAF], "can't wait on a branch")
	q[#q + 1] = skynet.response()
end

skynet.start(function()
	skynet.dispatch("lua", function(_, _, cmd, ...)
		if cmd == "WAIT" then
			local v = command.QUERY(...)
			if v ~= nil then
				skynet.ret(skynet.pack(v))
			else
				wait(...)
			end
			return
		end
		local f = assert(command[cmd], cmd)
		skynet.ret(skynet.pack(f(...)))
	end)
end)
