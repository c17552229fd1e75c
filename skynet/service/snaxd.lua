-- snaxd: runs one snax service file (`snaxd <name>`). The file's methods come from
-- snax.interface read with this service's own environment, so its globals are ours.
-- Protocol "snax": (method id, args...). System methods: init (once, first), exit,
-- hotfix (source, ...), profile. Accept methods answer nothing; response methods
-- answer their results. Each call is timed (skynet.profile) for `profile` and INFO.
local skynet = require "skynet"
local load_interface = require "snax.interface"
local profile = require "skynet.profile"
local snax = require "skynet.snax"

local name = tostring(...)
-- snax_loader: a file returning a loader function(path, name, G) for the interface.
local loader_file = skynet.getenv "snax_loader"
local methods, pattern = load_interface(name, _ENV, loader_file and assert(dofile(loader_file)))
local dir = pattern:sub(1, pattern:find("?", 1, true) - 1) .. name .. "/"
package.path = dir .. "?.lua;" .. package.path

SERVICE_NAME = name
SERVICE_PATH = dir

local stats = {}	-- method name -> { count, time }
local traceback = debug.traceback

local function account(m, elapsed)
	local s = stats[m]
	if not s then
		s = { count = 0, time = 0 }
		stats[m] = s
	end
	s.count = s.count + 1
	s.time = s.time + elapsed
end

local function reply(f, ...)
	return skynet.ret(skynet.pack(f(...)))
end

local function run_method(m, ...)
	profile.start()
	local ok, err
	if m[2] == "accept" then
		ok, err = xpcall(m[4], traceback, ...)
	else
		ok, err = xpcall(reply, traceback, m[4], ...)
	end
	account(m[3], profile.stop())
	assert(ok, err)
end

local started = false
local system = {}

function system.init(f, ...)
	assert(not started, "Already init")
	if f then
		f(...)
	end
	skynet.ret()
	skynet.info_func(function()
		return stats
	end)
	started = true
end

function system.exit(f, ...)
	assert(started, "Never init")
	if f then
		f(...)
	end
	skynet.ret()
	started = false
	skynet.exit()
end

function system.hotfix(_, ...)
	local hotfix = require "snax.hotfix"
	skynet.ret(skynet.pack(hotfix(methods, ...)))
end

function system.profile()
	skynet.ret(skynet.pack(stats))
end

local function dispatch(_, _, id, ...)
	local m = methods[id]
	if not m then
		error("snaxd: unknown method id " .. tostring(id))
	end
	if m[2] == "system" then
		return system[m[3]](m[4], ...)
	end
	assert(started, "Init first")
	run_method(m, ...)
end

skynet.start(function()
	skynet.dispatch("snax", dispatch)
	-- cluster.snax reaches snax services through the "lua" protocol
	function snax.enablecluster()
		skynet.dispatch("lua", dispatch)
	end
end)
