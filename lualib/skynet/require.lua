-- Yield-safe `require` for skynet services (core.md §9.8, §9.12).
--
-- * In the service main chunk it is the stock `require`.
-- * From a handler coroutine the module body runs in the calling coroutine, so it
--   may block; other coroutines asking for the same module wait for it.
-- * `skynet.init(f)` registers f to run after the body of the module being loaded
--   (or, in the main chunk, right before the start function).

local M = {}

local stock_require = require
local loaded = package.loaded
local co_running = coroutine.running
local pcall = pcall
local error = error
local format = string.format

local main_inits = {}      -- queued by skynet.init from the main chunk
local initialized = false  -- init_all has run
local loading = {}         -- module name -> { co =, waiting = {}, inits = {}, parent = }
local current = setmetatable({}, { __mode = "k" })  -- coroutine -> innermost load record

local function find_loader(name)
	local msg = {}
	for _, searcher in ipairs(package.searchers) do
		local loader, extra = searcher(name)
		if type(loader) == "function" then
			return loader, extra
		elseif type(loader) == "string" then
			msg[#msg + 1] = loader
		end
	end
	error(format("module '%s' not found:%s", name, table.concat(msg)), 3)
end

local function run_module(rec, name, loader, extra)
	local ret = loader(name, extra)
	if ret ~= nil then
		loaded[name] = ret
	elseif loaded[name] == nil then
		loaded[name] = true
	end
	local inits = rec.inits
	for i = 1, #inits do
		inits[i]()
	end
end

function M.require(name)
	local m = loaded[name]
	if m ~= nil then
		return m
	end
	local co, ismain = co_running()
	if ismain then
		return stock_require(name)
	end
	local rec = loading[name]
	if rec then
		if rec.co == co then
			error "circular dependency"
		end
		local w = rec.waiting
		w[#w + 1] = co
		loaded.skynet.wait(co)
		m = loaded[name]
		if m == nil then
			error(format("require %s failed", name))
		end
		return m
	end
	local loader, extra = find_loader(name)
	rec = { co = co, waiting = {}, inits = {}, parent = current[co] }
	loading[name] = rec
	current[co] = rec
	local ok, err = pcall(run_module, rec, name, loader, extra)
	current[co] = rec.parent
	loading[name] = nil
	if not ok then
		loaded[name] = nil
	end
	local w = rec.waiting
	if #w > 0 then
		local skynet = loaded.skynet
		for i = 1, #w do
			skynet.wakeup(w[i])
		end
	end
	if not ok then
		error(err, 0)
	end
	return loaded[name], extra
end

function M.init(f)
	assert(type(f) == "function", "skynet.init needs a function")
	local co, ismain = co_running()
	if not ismain then
		local rec = current[co]
		if rec then
			local inits = rec.inits
			inits[#inits + 1] = f
			return
		end
	end
	if initialized then
		-- 2016 semantics: after start, init functions run at once
		f()
	else
		main_inits[#main_inits + 1] = f
	end
end

function M.init_all()
	local i = 1
	while main_inits[i] do
		local f = main_inits[i]
		main_inits[i] = false
		i = i + 1
		f()
	end
	main_inits = {}
	initialized = true
end

return M
