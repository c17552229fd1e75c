-- skynet.queue serialises, re-entrant, FIFO; errors release the section
local skynet = require "skynet"
local queue = require "skynet.queue"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local cs = queue()
	local inside = 0
	local max_inside = 0
	local order = {}
	local finished = 0
	for i = 1, 5 do
		skynet.fork(function()
			cs(function()
				inside = inside + 1
				if inside > max_inside then max_inside = inside end
				order[#order + 1] = i
				skynet.sleep(2)
				-- re-entrant for the owner
				cs(function() order[#order + 1] = i .. "r" end)
				inside = inside - 1
			end)
			finished = finished + 1
		end)
	end
	while finished < 5 do
		skynet.sleep(5)
	end
	T.eq(max_inside, 1, "one coroutine inside at a time")
	T.seq(order, { "1", "1r", "2", "2r", "3", "3r", "4", "4r", "5", "5r" }, "FIFO entry")

	-- an error inside propagates and releases the section
	local err = T.errors("error in cs", "inside cs", cs, function() error "inside cs" end)
	T.eq(cs(function(a, b) return a + b, "ok" end, 1, 2), 3, "section usable after an error")

	-- return values pass through
	local x, y = cs(function() return "x", "y" end)
	T.eq(x .. y, "xy", "return values")
end)
