-- Debug console over TCP (services.md §5). Args: [ip] port (ip defaults to 127.0.0.1).
local skynet = require "skynet"
local core = require "skynet.core"
local socket = require "skynet.socket"

local args = table.pack(...)
assert(args.n <= 2)
local listen_ip = args.n == 2 and args[1] or "127.0.0.1"
local listen_port = tonumber(args[args.n])

local DEFAULT_TIMEOUT = 300	-- centiseconds

local COMMAND = {}	-- name -> f(word args...)
local COMMANDX = {}	-- name -> f(words, line): needs the raw command line

local function optional(name)
	local ok, m = pcall(require, name)
	if ok then
		return m
	end
end

----------------------------------------------------------------------------------------
-- output

local function by_name(a, b)
	return tostring(a) < tostring(b)
end

local function sorted_keys(t)
	local keys = {}
	for k in pairs(t) do
		keys[#keys + 1] = k
	end
	table.sort(keys, by_name)
	return keys
end

local function inline_table(t)
	local items = {}
	for _, k in ipairs(sorted_keys(t)) do
		items[#items + 1] = tostring(k) .. ":" .. tostring(t[k])
	end
	return table.concat(items, "\t")
end

local function dump_list(print, list)
	for _, k in ipairs(sorted_keys(list)) do
		local v = list[k]
		if type(v) == "table" then
			print(k, inline_table(v))
		else
			print(k, v)
		end
	end
end

----------------------------------------------------------------------------------------
-- helpers

local function adjust_address(address)
	local prefix = address:sub(1, 1)
	if prefix == "." then
		return assert(skynet.localname(address), "Not a valid name")
	elseif prefix ~= ":" then
		local n = assert(tonumber(address, 16), "Need an address")
		return n | (skynet.harbor(skynet.self()) << 24)
	end
	return address
end

local function timeout(ti)
	if ti then
		ti = tonumber(ti)
		if ti <= 0 then
			ti = nil
		end
	else
		ti = DEFAULT_TIMEOUT
	end
	return ti
end

local function launched(ok, addr, name)
	if not ok then
		return "Failed"
	end
	if addr == nil then
		return "Exit"
	end
	return { [skynet.address(addr)] = name }
end

----------------------------------------------------------------------------------------
-- commands

function COMMAND.help()
	return {
		help = "This help message",
		list = "List all the service",
		stat = "Dump all stats",
		info = "info address : get service infomation",
		exit = "exit address : kill a lua service",
		kill = "kill address : kill service",
		mem = "mem : show memory status",
		gc = "gc : force every lua service do garbage collect",
		start = "lanuch a new lua service",
		snax = "lanuch a new snax service",
		clearcache = "clear lua code cache",
		service = "List unique service",
		task = "task address : show service task detail",
		uniqtask = "task address : show service unique task detail",
		inject = "inject address luascript.lua",
		logon = "logon address",
		logoff = "logoff address",
		log = "launch a new lua service with log",
		debug = "debug address : debug a lua service",
		signal = "signal address sig",
		cmem = "Show C memory info",
		jmem = "Show jemalloc mem stats",
		ping = "ping address",
		call = "call address ...",
		trace = "trace address [proto] [on|off]",
		netstat = "netstat : show netstat",
		profactive = "profactive [on|off] : active/deactive jemalloc heap profilling",
		dumpheap = "dumpheap : dump heap profilling",
		killtask = "killtask address threadname : threadname listed by task",
		dbgcmd = "run address debug command",
		getenv = "getenv name : skynet.getenv(name)",
		setenv = "setenv name value: skynet.setenv(name,value)",
	}
end

function COMMAND.clearcache()
	local cache = optional "skynet.codecache"
	if cache and cache.clear then
		cache.clear()
	end
end

function COMMAND.start(...)
	local ok, addr = pcall(skynet.newservice, ...)
	return launched(ok, addr, (...))
end

function COMMAND.log(...)
	local ok, addr = pcall(skynet.call, ".launcher", "lua", "LOGLAUNCH", "snlua", ...)
	return launched(ok, addr, (...))
end

function COMMAND.snax(...)
	local snax = optional "skynet.snax"
	if not snax then
		return "Failed"
	end
	local ok, s = pcall(snax.newservice, ...)
	return launched(ok, ok and s and s.handle, (...))
end

function COMMAND.service()
	return skynet.call("SERVICE", "lua", "LIST")
end

function COMMAND.list()
	return skynet.call(".launcher", "lua", "LIST")
end

function COMMAND.stat(ti)
	return skynet.call(".launcher", "lua", "STAT", timeout(ti))
end

function COMMAND.mem(ti)
	return skynet.call(".launcher", "lua", "MEM", timeout(ti))
end

function COMMAND.gc(ti)
	return skynet.call(".launcher", "lua", "GC", timeout(ti))
end

function COMMAND.kill(address)
	return skynet.call(".launcher", "lua", "KILL", adjust_address(address))
end

function COMMAND.exit(address)
	skynet.send(adjust_address(address), "debug", "EXIT")
end

function COMMAND.inject(address, filename, ...)
	address = adjust_address(address)
	local f = io.open(filename, "rb")
	if not f then
		return "Can't open " .. filename
	end
	local source = f:read "a"
	f:close()
	local ok, output = skynet.call(address, "debug", "RUN", source, filename, ...)
	if ok == false then
		error(output, 0)
	end
	return output
end

function COMMAND.dbgcmd(address, cmd, ...)
	return skynet.call(adjust_address(address), "debug", cmd, ...)
end

function COMMAND.task(address)
	return skynet.call(adjust_address(address), "debug", "TASK")
end

function COMMAND.uniqtask(address)
	return skynet.call(adjust_address(address), "debug", "UNIQTASK")
end

function COMMAND.killtask(address, threadname)
	return skynet.call(adjust_address(address), "debug", "KILLTASK", threadname)
end

function COMMAND.info(address, ...)
	return skynet.call(adjust_address(address), "debug", "INFO", ...)
end

function COMMAND.logon(address)
	core.command("LOGON", skynet.address(adjust_address(address)))
end

function COMMAND.logoff(address)
	core.command("LOGOFF", skynet.address(adjust_address(address)))
end

function COMMAND.signal(address, sig)
	address = skynet.address(adjust_address(address))
	if sig then
		core.command("SIGNAL", string.format("%s %d", address, tonumber(sig)))
	else
		core.command("SIGNAL", address)
	end
end

function COMMAND.ping(address)
	address = adjust_address(address)
	local t = skynet.now()
	skynet.call(address, "debug", "PING")
	return tostring(skynet.now() - t)
end

function COMMAND.trace(address, proto, flag)
	address = adjust_address(address)
	if flag == nil and (proto == "on" or proto == "off") then
		-- no protocol given: the flag travels alone (TRACELOG defaults to "lua")
		proto = proto == "on"
	else
		assert(flag == "on" or flag == "off", "trace address [proto] [on|off]")
		flag = flag == "on"
	end
	skynet.call(address, "debug", "TRACELOG", proto, flag)
end

function COMMAND.getenv(name)
	return { [name] = tostring(skynet.getenv(name)) }
end

function COMMAND.setenv(name, value)
	skynet.setenv(name, value)
end

local function memory()
	return assert(optional "skynet.memory", "skynet.memory is not available")
end

function COMMAND.cmem()
	local m = memory()
	local t = {}
	for handle, bytes in pairs(m.info()) do
		t[skynet.address(handle)] = bytes
	end
	t.total = m.total()
	t.block = m.block()
	return t
end

function COMMAND.jmem()
	local m = memory()
	assert(m.jestat, "jemalloc is not available")
	local t = {}
	for k, v in pairs(m.jestat()) do
		t["stats." .. k] = string.format("%11d  %8.2f Mb", v, v / 1048576)
	end
	return t
end

function COMMAND.profactive(flag)
	local m = memory()
	assert(m.profactive, "jemalloc is not available")
	local active
	if flag ~= nil then
		active = m.profactive(flag == "on" or flag == "true")
	else
		active = m.profactive()
	end
	return "heap profilling is " .. (active and "active" or "deactive")
end

function COMMAND.dumpheap()
	local m = memory()
	assert(m.dumpheap, "jemalloc is not available")
	m.dumpheap()
end

local function size_text(n)
	if n == nil then
		return
	end
	if n < 1024 then
		return tostring(n)
	elseif n < 1024 * 1024 then
		return tostring(n // 1024) .. "K"
	end
	return tostring(n // (1024 * 1024)) .. "M"
end

local function elapsed_text(now, t)
	if t == nil then
		return
	end
	local cs = now - t
	if cs < 6000 then
		return tostring(cs / 100) .. "s"
	end
	local hours = cs // 360000
	cs = cs % 360000
	local minutes = cs // 6000
	local seconds = (cs % 6000) / 100
	if hours > 0 then
		return string.format("%d:%02d:%05.2f", hours, minutes, seconds)
	end
	return string.format("%d:%05.2f", minutes, seconds)
end

function COMMAND.netstat()
	local stat = socket.netstat()
	local now = skynet.now()
	for _, info in ipairs(stat) do
		if info.address then
			info.address = skynet.address(info.address)
		end
		info.read = size_text(info.read)
		info.write = size_text(info.write)
		info.wbuffer = size_text(info.wbuffer)
		info.rtime = elapsed_text(now, info.rtime)
		info.wtime = elapsed_text(now, info.wtime)
	end
	return stat
end

function COMMANDX.call(words, line)
	local address = adjust_address(words[2])
	local exprs = assert(line:match "^%s*%S+%s+%S+%s(.+)$", "need arguments")
	local f = assert(load("return " .. exprs, "debug console", "t", {}), "Invalid arguments")
	local values = table.pack(pcall(f))
	if not values[1] then
		error(values[2], 0)
	end
	return table.pack(skynet.call(address, "lua", table.unpack(values, 2, values.n)))
end

function COMMANDX.debug()
	error("Remote debug is not supported", 0)
end

----------------------------------------------------------------------------------------
-- connections

local function words_of(line)
	local w = {}
	for s in line:gmatch "%S+" do
		w[#w + 1] = s
	end
	return w
end

local function docmd(line, print)
	local words = words_of(line)
	local name = words[1]
	local ok, result
	local f = COMMAND[name]
	if f then
		ok, result = pcall(f, table.unpack(words, 2))
	else
		f = COMMANDX[name]
		if f then
			ok, result = pcall(f, words, line)
		else
			print "Invalid command, type help for command list"
			print ""
			print "<CMD Error>"
			return
		end
	end
	if ok then
		if result then
			if type(result) == "table" then
				dump_list(print, result)
			else
				print(result)
			end
		end
		print "<CMD OK>"
	else
		print(result)
		print "<CMD Error>"
	end
end

local function url_decode(s)
	return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Read HTTP header lines up to the blank line; returns the header table.
local function read_headers(fd)
	local headers = {}
	while true do
		local line = socket.readline(fd, "\n")
		if not line then
			return headers
		end
		line = line:gsub("\r$", "")
		if line == "" then
			return headers
		end
		local k, v = line:match "^([^:]+):%s*(.*)$"
		if k then
			headers[k:lower()] = v
		end
	end
end

local function serve(fd, print, addr)
	print "Welcome to skynet console"
	skynet.error(addr, "connected")
	local ok, err = pcall(function()
		while true do
			local line = socket.readline(fd, "\n")
			if not line then
				break
			end
			if line:sub(1, 4) == "GET " then
				local path = line:match "^GET%s+(%S+)" or "/"
				read_headers(fd)
				path = url_decode(path:sub(2)):gsub("/", " ")
				docmd(path, print)
				break
			elseif line:sub(1, 5) == "POST " then
				local headers = read_headers(fd)
				local len = tonumber(headers["content-length"])
				local body
				if len then
					body = socket.read(fd, len)
				else
					body = socket.readall(fd)
				end
				if body then
					docmd(body, print)
				end
				break
			elseif line ~= "" then
				docmd(line, print)
			end
		end
	end)
	if not ok then
		skynet.error(fd, err)
	end
	skynet.error(addr, "disconnect")
	socket.close(fd)
end

skynet.start(function()
	local listen_id, ip, port = socket.listen(listen_ip, listen_port)
	skynet.error("Start debug console at " .. tostring(ip or listen_ip) .. ":" .. tostring(port or listen_port))
	socket.start(listen_id, function(id, addr)
		local function print(...)
			local n = select("#", ...)
			local t = {}
			for i = 1, n do
				t[i] = tostring((select(i, ...)))
			end
			socket.write(id, table.concat(t, "\t") .. "\n")
		end
		socket.start(id)
		skynet.fork(serve, id, print, addr)
	end)
end)
