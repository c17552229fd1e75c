-- A snax service for t_snax: response/accept methods, init/exit, live state a
-- hotfix patches.
local skynet = require "skynet"
local snax = require "skynet.snax"

local n = 0 -- bumped by accept.bump
local greeting = "hi"

function response.ping(x)
	skynet.sleep(1)
	return x
end

function accept.bump(k)
	n = n + (k or 1)
end

function response.count()
	return n, greeting
end

function response.fail()
	error "throw an error"
end

function accept.quit(...)
	snax.exit(...)
end

function init(...)
	skynet.error("INIT", ...)
	snax.enablecluster()
end

function exit(...)
	skynet.error("EXIT", ...)
end
