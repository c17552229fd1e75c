-- Cluster benchmark, node "b": an echo service registered as "echo" and a sink
-- registered as "sink" (counts pushes; "wait", n answers once n have arrived).
-- Public API only, so it runs on upstream skynet too.
local skynet = require "skynet"
local cluster = require "skynet.cluster"

local mode = ...

if mode == "echo" then
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, ...)
			skynet.ret(skynet.pack(...))
		end)
	end)
elseif mode == "sink" then
	local count, want, waiter = 0, nil, nil
	skynet.start(function()
		skynet.dispatch("lua", function(session, _, cmd, n)
			if cmd == "wait" then
				want, waiter = n, skynet.response()
				if count >= want then
					waiter(true, count)
					waiter = nil
				end
			elseif cmd == "reset" then
				count = 0
				skynet.ret(skynet.pack(true))
			else
				count = count + 1
				if waiter and count >= want then
					waiter(true, count)
					waiter = nil
				end
			end
		end)
	end)
else
	skynet.start(function()
		cluster.reload { b = "127.0.0.1:" .. skynet.getenv "bench_port" }
		cluster.register("echo", skynet.newservice("cluster_server", "echo"))
		cluster.register("sink", skynet.newservice("cluster_server", "sink"))
		cluster.open "b"
		skynet.error("BENCHNODE ready")
	end)
end
