-- One agent per user (sample.md 4.9). assign(fd, userid) hands the connection to
-- the user's agent, creating it when there is none; exit(userid) forgets it.
local skynet = require "skynet"
require "skynet.manager"
local service = require "service"
local log = require "log"

local manager = {}
local users = {}

local function new_agent(userid)
	local agent = skynet.newservice "agent"
	local current = users[userid]
	if current then
		-- someone else created one while we waited
		skynet.kill(agent)
		return current
	end
	users[userid] = agent
	return agent
end

function manager.assign(fd, userid)
	local agent
	repeat
		agent = users[userid] or new_agent(userid)
	until skynet.call(agent, "lua", "assign", fd, userid)
	log("Assign %d to %s [%s]", fd, userid, agent)
end

function manager.exit(userid)
	users[userid] = nil
end

service.init {
	command = manager,
	info = users,
}
