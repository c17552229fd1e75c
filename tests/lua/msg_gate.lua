-- snax.msgserver for t_login: answers "echo:<msg>" (or raises on "boom").
local msgserver = require "snax.msgserver"
local skynet = require "skynet"

local servername
local subid = 0

local conf = {}

function conf.register_handler(name)
	servername = name
	skynet.call(".login", "lua", "register_gate", name, skynet.self())
end

function conf.login_handler(uid, secret)
	subid = subid + 1
	local username = msgserver.username(uid, subid, servername)
	msgserver.login(username, secret)
	return subid
end

function conf.logout_handler(uid, sid)
	msgserver.logout(msgserver.username(uid, sid, servername))
end

function conf.kick_handler(uid, sid)
	conf.logout_handler(uid, sid)
end

function conf.request_handler(username, msg)
	assert(msg ~= "boom", "boom")
	return "echo:" .. msg
end

function conf.disconnect_handler(username)
	skynet.error("AFK " .. username)
end

msgserver.start(conf)
