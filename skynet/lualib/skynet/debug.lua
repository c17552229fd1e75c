-- The debug protocol (PTYPE 9) served by every Lua service (core.md §11), loaded by
-- skynet.lua on a service's first debug message.
local M = {}

local extcmd = {}

function M.reg_debugcmd(name, fn)
	local prev = extcmd[name]
	extcmd[name] = fn
	return prev
end

function M.init(skynet, internal)
	local pack = skynet.pack
	local ret = skynet.ret
	local dbgcmd = {}

	function dbgcmd.MEM()
		ret(pack(collectgarbage "count"))
	end

	local gc_running = false
	function dbgcmd.GC()
		skynet.ignoreret()	-- always sent, never called
		if gc_running then
			return
		end
		gc_running = true
		local before = collectgarbage "count"
		local t0 = skynet.hpc()
		collectgarbage "collect"
		skynet.yield()
		local after = collectgarbage "count"
		gc_running = false
		skynet.error(string.format("GC %.2f Kb -> %.2f Kb, cost %.2f sec", before, after,
			(skynet.hpc() - t0) / 1e9))
	end

	function dbgcmd.STAT()
		ret(pack {
			task = skynet.task(),
			mqlen = skynet.stat "mqlen",
			cpu = skynet.stat "cpu",
			message = skynet.stat "message",
		})
	end

	function dbgcmd.TASK(session)
		if session then
			ret(pack(skynet.task(session)))
		else
			local t = {}
			skynet.task(t)
			ret(pack(t))
		end
	end

	function dbgcmd.UNIQTASK()
		ret(pack(skynet.uniqtask()))
	end

	function dbgcmd.KILLTASK(threadname)
		local co = skynet.killthread(threadname)
		if co then
			skynet.error(string.format("Kill %s", co))
			ret()
		else
			skynet.error(string.format("Kill %s : Not found", threadname))
			ret(pack "Not found")
		end
	end

	function dbgcmd.INFO(...)
		local f = internal.info()
		if f then
			ret(pack(f(...)))
		else
			ret(pack(nil))
		end
	end

	function dbgcmd.EXIT()
		skynet.exit()
	end

	function dbgcmd.RUN(source, filename, ...)
		local inject = require "skynet.inject"
		local args = table.pack(...)
		local ok, output = inject(skynet, source, filename, args,
			internal.dispatch, skynet.register_protocol)
		collectgarbage "collect"
		ret(pack(ok, table.concat(output, "\n")))
	end

	function dbgcmd.TERM(service)
		skynet.term(service)
	end

	function dbgcmd.REMOTEDEBUG()
		skynet.error "Remote debug is not supported"
		ret(pack(false, "Remote debug is not supported"))
	end

	function dbgcmd.SUPPORT(pname)
		ret(pack(skynet.dispatch(pname) ~= nil))
	end

	function dbgcmd.PING()
		ret()
	end

	function dbgcmd.LINK()
		-- never answered while alive: the caller learns about our exit
		skynet.response()
	end

	function dbgcmd.TRACELOG(proto, flag)
		if type(proto) ~= "string" then
			flag = proto
			proto = "lua"
		end
		skynet.error(string.format("Turn trace log %s for %s", flag, proto))
		skynet.traceproto(proto, flag)
		ret()
	end

	local function dispatch(session, source, cmd, ...)
		local f = dbgcmd[cmd] or extcmd[cmd]
		assert(f, cmd)
		f(...)
	end

	-- skynet.lua registers the protocol with a stub that calls init on the first
	-- debug message
	if skynet.dispatch("debug") then
		skynet.dispatch("debug", dispatch)
	else
		skynet.register_protocol {
			name = "debug",
			id = assert(skynet.PTYPE_DEBUG),
			pack = skynet.pack,
			unpack = skynet.unpack,
			dispatch = dispatch,
		}
	end
	return dispatch
end

return M
