-- skynet.coroutine: user coroutines that may call blocking skynet APIs.
-- A user-level yield is tagged "USER"; any other yield comes from the framework
-- (call, sleep, ...) and is passed up to the skynet thread that resumed us.
local coroutine = coroutine
local cresume = coroutine.resume
local cyield = coroutine.yield
local cstatus = coroutine.status
local crunning = coroutine.running
local select = select

local M = {}
for k, v in pairs(coroutine) do
	M[k] = v
end

local managed = setmetatable({}, { __mode = "k" })	-- user co -> true
local blocked = setmetatable({}, { __mode = "k" })	-- user co -> skynet thread it blocks
local parent = setmetatable({}, { __mode = "k" })	-- user co -> who resumed it

function M.create(f)
	local co = coroutine.create(f)
	managed[co] = true
	return co
end

local function settle(co, ok, ...)
	if not ok then
		return false, ...
	end
	if cstatus(co) == "dead" then
		return true, ...
	end
	if ... == "USER" then
		return true, select(2, ...)
	end
	-- a framework yield: block the skynet thread until the framework resumes it
	local from = crunning()
	blocked[co] = from
	local function pass(...)
		blocked[co] = nil
		return settle(co, cresume(co, ...))
	end
	return pass(cyield(...))
end

function M.resume(co, ...)
	if not managed[co] then
		-- only skynet.coroutine's own coroutines; a dead one gives Lua's own error
		if cstatus(co) == "dead" then
			return cresume(co, ...)
		end
		return false, "cannot resume none skynet coroutine"
	end
	if blocked[co] then
		return false, "cannot resume a skynet coroutine suspend by skynet framework"
	end
	parent[co] = crunning()
	return settle(co, cresume(co, ...))
end

function M.yield(...)
	return cyield("USER", ...)
end

function M.status(co)
	local s = cstatus(co)
	if s == "suspended" and blocked[co] then
		return "blocked"
	end
	return s
end

function M.wrap(f)
	local co = M.create(f)
	local function unwrap(ok, ...)
		if ok then
			return ...
		end
		error((...), 0)
	end
	return function(...)
		return unwrap(M.resume(co, ...))
	end
end

-- The skynet thread a coroutine ultimately runs in, and whether co is one.
function M.thread(co)
	co = co or crunning()
	if not managed[co] then
		return co, true
	end
	local p = parent[co]
	while p and managed[p] do
		p = parent[p]
	end
	return p, false
end

return M
