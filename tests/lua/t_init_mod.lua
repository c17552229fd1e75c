-- module used by t_init: its body blocks when loaded from a handler coroutine
local skynet = require "skynet"
local M = { loads = 0, inited = false }
M.loads = M.loads + 1
LOAD_LOG[#LOAD_LOG + 1] = "mod body"
skynet.sleep(5)	-- blocking inside a module body is allowed (skynet.require)
skynet.init(function()
	M.inited = true
	LOAD_LOG[#LOAD_LOG + 1] = "mod init"
end)
return M
