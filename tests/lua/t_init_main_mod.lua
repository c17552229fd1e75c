-- required from the main chunk: its skynet.init runs before the start function
local skynet = require "skynet"
skynet.init(function()
	INIT_LOG[#INIT_LOG + 1] = "main_mod init"
end)
INIT_LOG[#INIT_LOG + 1] = "main_mod body"
return {}
