-- skynet.queue(): a critical section. cs(f, ...) runs f(...) with every other
-- cs call of the same queue waiting; re-entrant for the owning coroutine; waiters
-- enter in FIFO order.
local skynet = require "skynet"
local co_running = coroutine.running
local xpcall = xpcall
local traceback = debug.traceback

return function()
	local owner = nil
	local depth = 0
	local waiting, head, tail = {}, 1, 0

	local function leave(ok, ...)
		depth = depth - 1
		if depth == 0 then
			if head <= tail then
				-- hand the section straight to the next waiter
				local co = waiting[head]
				waiting[head] = nil
				head = head + 1
				owner = co
				skynet.wakeup(co)
			else
				owner = nil
				head, tail = 1, 0
			end
		end
		if not ok then
			error(..., 0)
		end
		return ...
	end

	return function(f, ...)
		local co = co_running()
		if owner ~= co then
			if owner == nil then
				owner = co
			else
				tail = tail + 1
				waiting[tail] = co
				skynet.wait(co)
			end
		end
		depth = depth + 1
		return leave(xpcall(f, traceback, ...))
	end
end
