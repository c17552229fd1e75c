-- The per-user agent (sample.md 4.10). manager assigns it every connection of its
-- user; each runs in its own new_user coroutine. One connection at a time is logged
-- in (data.fd). When the logged-in connection goes away the agent lingers 10 s and
-- exits unless the user logged in again meanwhile.
--
-- Project decision (sample.md 9.2): the linger counts from the *last* disconnect; a
-- login cancels the pending linger timer (it is woken and finds data.fd set).
local skynet = require "skynet"
local service = require "service"
local client = require "client"
local log = require "log"

local LINGER = 1000 -- centiseconds

local agent = {}
local data = {}
local cli = client.handler()
local linger -- token of the sleeping linger coroutine, if any

function cli:ping()
	assert(self.login)
	log "ping"
end

function cli:login()
	assert(not self.login)
	if data.fd then
		log("login fail %s fd=%d", data.userid, self.fd)
		return { ok = false }
	end
	data.fd = self.fd
	self.login = true
	if linger then
		skynet.wakeup(linger)
	end
	log("login succ %s fd=%d", data.userid, self.fd)
	client.push(self, "push", { text = "welcome" })
	return { ok = true }
end

local function wait_linger()
	local token = {}
	if linger then
		skynet.wakeup(linger) -- an older timer: this disconnect restarts the count
	end
	linger = token
	skynet.sleep(LINGER, token)
	if linger ~= token then
		return false -- superseded by a later disconnect
	end
	linger = nil
	return data.fd == nil and not data.exit
end

local function new_user(fd)
	local ok, err = pcall(client.dispatch, { fd = fd })
	log("fd=%d is gone. error = %s", fd, err)
	client.close(fd)
	if data.fd == fd then
		data.fd = nil
		if wait_linger() then
			data.exit = true
			skynet.call(service.manager, "lua", "exit", data.userid)
			log("user %s afk", data.userid)
			skynet.exit()
		end
	end
end

function agent.assign(fd, userid)
	if data.exit then
		return false
	end
	if data.userid == nil then
		data.userid = userid
	end
	assert(data.userid == userid)
	skynet.fork(new_user, fd)
	return true
end

service.init {
	command = agent,
	info = data,
	require = { "manager" },
	init = client.init "proto",
}
