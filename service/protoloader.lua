-- Loads the client protocol schemas into the process-wide sproto slots (sample.md
-- 4.6). load {names}: proto/<name>.sproto (relative to the CWD) goes to slot i;
-- index(name) gives the slot back.
local skynet = require "skynet"
local sprotoparser = require "sprotoparser"
local sprotoloader = require "sprotoloader"
local service = require "service"
local log = require "log"

local loader = {}
local data = {}

local function read(name)
	local filename = string.format("proto/%s.sproto", name)
	local f = assert(io.open(filename), "Can't open " .. name)
	local text = f:read "a"
	f:close()
	return text
end

function loader.load(list)
	for i, name in ipairs(list) do
		local bundle = sprotoparser.parse(read(name), name)
		log("load proto [%s] in slot %d", name, i)
		data[name] = i
		sprotoloader.save(bundle, i)
	end
end

function loader.index(name)
	return data[name]
end

service.init {
	command = loader,
	info = data,
}
