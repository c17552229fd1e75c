-- skynet.mqueue (deprecated upstream in favour of skynet.queue; kept for old code):
-- messages of the "queue" protocol (PTYPE_QUEUE, 8) are handled one at a time, in
-- arrival order, by the function given to mqueue.register, in one coroutine.
--
--   mqueue.register(f)     f(...) handles each message (once per service)
--   mqueue.call(addr, ...) the results of addr's f(...); raises what f raised
--   mqueue.send(addr, ...) one-way; f must return nothing and not raise (logged)
--   mqueue.size()          messages waiting
local skynet = require "skynet"
local c = require "skynet.core"

local PTYPE_QUEUE = 8
local PTYPE_RESPONSE = 1

local mqueue = {}
local pending = {}	-- { session, source, n, args... } in arrival order
local head, tail = 1, 0
local idle -- the worker coroutine while it waits
local registered = false

skynet.register_protocol {
	name = "queue",
	id = PTYPE_QUEUE,
	pack = skynet.pack,
	unpack = skynet.unpack,
	dispatch = function(session, source, ...)
		-- the answer is sent later by the worker, not by this dispatch
		skynet.ignoreret()
		tail = tail + 1
		pending[tail] = { session, source, select("#", ...), ... }
		if idle then
			local co = idle
			idle = nil
			skynet.wakeup(co)
		end
	end,
}

local function serve(f)
	while true do
		if head > tail then
			idle = coroutine.running()
			skynet.wait(idle)
		else
			local m = pending[head]
			pending[head] = nil
			head = head + 1
			local session, source, n = m[1], m[2], m[3]
			if session == 0 then
				local ok, r = pcall(f, table.unpack(m, 4, 3 + n))
				if not ok then
					skynet.error(string.format("[:%x] send a message to [:%x] throw an error : %s",
						source, skynet.self(), tostring(r)))
				elseif r ~= nil then
					skynet.error(string.format("[:%x] send a message to [:%x] return something",
						source, skynet.self()))
				end
			else
				c.send(source, PTYPE_RESPONSE, session,
					skynet.pack(pcall(f, table.unpack(m, 4, 3 + n))))
			end
		end
	end
end

function mqueue.register(f)
	assert(not registered, "mqueue.register: only once")
	registered = true
	skynet.fork(serve, f)
end

local function unwrap(ok, ...)
	if not ok then
		error((...))
	end
	return ...
end

function mqueue.call(addr, ...)
	return unwrap(skynet.call(addr, "queue", ...))
end

function mqueue.send(addr, ...)
	return skynet.send(addr, "queue", ...)
end

function mqueue.size()
	return tail - head + 1
end

return mqueue
