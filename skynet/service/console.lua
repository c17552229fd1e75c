-- stdin console (services.md §4): each input line launches a service.
local skynet = require "skynet"

local function words(line)
	local t = {}
	for w in line:gmatch "%S+" do
		t[#t + 1] = w
	end
	return t
end

local function run(socket)
	local ok, stdin = pcall(socket.stdin)
	if not ok or not stdin then
		return	-- no usable stdin (e.g. /dev/null, daemon mode): stay idle
	end
	while true do
		local line = socket.readline(stdin, "\n")
		if not line then
			return	-- EOF: the console goes idle, nothing else is affected
		end
		local w = words(line)
		if w[1] == "snax" then
			pcall(function()
				local snax = require "skynet.snax"
				snax.newservice(table.unpack(w, 2))
			end)
		elseif line ~= "" then
			pcall(skynet.newservice, line)
		end
	end
end

skynet.start(function()
	local ok, socket = pcall(require, "skynet.socket")
	if not ok then
		skynet.error("console: stdin is not available (" .. tostring(socket) .. ")")
		return
	end
	skynet.fork(function()
		local ok, err = pcall(run, socket)
		if not ok then
			skynet.error("console: " .. tostring(err))
		end
	end)
end)
