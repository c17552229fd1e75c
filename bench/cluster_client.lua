-- Cluster benchmark, node "a": runs the cases against node "b" (cluster_server.lua)
-- and prints one "BENCH cluster_<case> ..." line per case. Each case runs for about
-- `bench_secs` seconds (default 2) or `bench_n` operations, whichever ends first.
-- Public API only, so it runs on upstream skynet too.
local skynet = require "skynet"
local cluster = require "skynet.cluster"
require "skynet.manager"	-- skynet.abort

local SECS = tonumber(skynet.getenv "bench_secs") or 2
local MAXN = tonumber(skynet.getenv "bench_n") or 1000000
local only = skynet.getenv "bench_case"

local function clock() return skynet.hpc() / 1e9 end

local function hwm_kb()
	local f = io.open("/proc/self/status")
	local s = f:read("a")
	f:close()
	return tonumber(s:match("VmHWM:%s*(%d+)")), tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function seq(payload)
	local t0, n = clock(), 0
	local deadline = t0 + SECS
	repeat
		for _ = 1, 10 do
			local r = cluster.call("b", "@echo", payload)
			assert(#r == #payload)
		end
		n = n + 10
	until clock() >= deadline or n >= MAXN
	local dt = clock() - t0
	return n / dt, n, dt
end

local cases = {}

function cases.seq()
	return string.format("round_trips_per_s=%.0f n=%d secs=%.2f", seq("ping"))
end

function cases.c16()
	local t0 = clock()
	local deadline = t0 + SECS
	local total, left, co = 0, 16, coroutine.running()
	for _ = 1, 16 do
		skynet.fork(function()
			repeat
				for _ = 1, 10 do
					cluster.call("b", "@echo", "ping")
				end
				total = total + 10
			until clock() >= deadline or total >= MAXN
			left = left - 1
			if left == 0 then skynet.wakeup(co) end
		end)
	end
	skynet.wait(co)
	local dt = clock() - t0
	return string.format("round_trips_per_s=%.0f callers=16 n=%d secs=%.2f", total / dt, total, dt)
end

function cases.send()
	local n = math.min(MAXN, 400000 * SECS)
	cluster.call("b", "@sink", "reset")
	local hwm0, rss0 = hwm_kb()
	local t0 = clock()
	local backoffs = 0
	for i = 1, n do
		-- ours raises when the sender falls behind (bounded queue): back off a tick
		while not pcall(cluster.send, "b", "@sink", "push", i) do
			backoffs = backoffs + 1
			skynet.sleep(1)
		end
	end
	local t1 = clock()
	local got = cluster.call("b", "@sink", "wait", n)
	local dt = clock() - t0
	local hwm1, rss1 = hwm_kb()
	local maxq = "?"
	if cluster.stat then	-- ours: the sender's deepest queue
		maxq = cluster.stat("b").maxqueue
	end
	return string.format("msgs_per_s=%.0f n=%d got=%d secs=%.2f enqueue_secs=%.2f rss_kb=%d->%d peak_rss_kb=%d sender_max_queue=%s backoffs=%d",
		got / dt, n, got, dt, t1 - t0, rss0, rss1, hwm1, maxq, backoffs)
end

function cases.kb4()
	return string.format("round_trips_per_s=%.0f n=%d secs=%.2f bytes=4096", seq(string.rep("x", 4096)))
end

function cases.kb64()
	return string.format("round_trips_per_s=%.0f n=%d secs=%.2f bytes=65536", seq(string.rep("y", 65536)))
end

skynet.start(function()
	cluster.reload { b = "127.0.0.1:" .. skynet.getenv "bench_port" }
	cluster.call("b", "@echo", "warm up")
	for _, name in ipairs { "seq", "c16", "send", "kb4", "kb64" } do
		if not only or only == "all" or only == name then
			skynet.error(string.format("BENCH cluster_%s %s", name, cases[name]()))
		end
	end
	skynet.error("BENCHDONE")
	skynet.abort()
end)
