-- skynet.mqueue (2016 name `mqueue`): one message at a time in arrival order, call
-- results and errors, sends.
local skynet = require "skynet"
local mqueue = require "mqueue"

local mode = ...

if mode == "slave" then
	local log = {}
	skynet.start(function()
		mqueue.register(function(cmd, a, b)
			if cmd == "slow" then
				log[#log + 1] = "begin" .. a
				skynet.sleep(b)
				log[#log + 1] = "end" .. a
				return a
			elseif cmd == "note" then
				log[#log + 1] = "note" .. a
			elseif cmd == "fail" then
				error("failed " .. a)
			elseif cmd == "log" then
				return table.concat(log, " "), mqueue.size()
			end
		end)
	end)
	return
end

package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	local s = skynet.newservice(SERVICE_NAME, "slave")
	local results = {}
	local done = 0
	for i, ti in ipairs { 5, 1, 3 } do
		skynet.fork(function()
			results[i] = mqueue.call(s, "slow", i, ti)
			done = done + 1
		end)
	end
	mqueue.send(s, "note", "x")
	while done < 3 do
		skynet.sleep(1)
	end
	T.seq(results, { 1, 2, 3 }, "call results")
	local log, size = mqueue.call(s, "log")
	-- the send left before the forks ran their calls
	T.eq(log, "notex begin1 end1 begin2 end2 begin3 end3", "one at a time, in arrival order")
	T.eq(size, 0, "nothing waiting")
	T.errors("a raising handler", "failed y", mqueue.call, s, "fail", "y")
	T.eq((mqueue.call(s, "log")), log, "still serving after an error")
end)
