-- upstream-style echo over raw protocols: rawcall/rawsend, text replies, response()
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

skynet.register_protocol {
	name = "text",
	id = skynet.PTYPE_TEXT,
	pack = function(text) return text end,
	unpack = skynet.tostring,
}

local mode = ...

if mode == "server" then
	skynet.start(function()
		skynet.dispatch("text", function(session, address, text)
			local resp = skynet.response(function(s) return s end)
			skynet.fork(function()
				skynet.sleep(1)
				resp(true, "echo:" .. text)
			end)
		end)
		skynet.dispatch("lua", function(session, address, ...)
			skynet.ret(skynet.pack(...))
		end)
	end)
else
	T.run(function()
		local s = skynet.newservice("testecho", "server")
		T.eq(skynet.call(s, "text", "hello"), "echo:hello", "text echo via response()")
		local msg, sz = skynet.rawcall(s, "lua", skynet.pack("raw", 1, 2))
		local a, b, c = skynet.unpack(msg, sz)
		T.eq(a .. b .. c, "raw12", "rawcall")
		T.eq(skynet.rawsend(s, "lua", skynet.pack("x")), 0, "rawsend returns 0")
		T.errors("rawcall invalid address", "call to invalid address", skynet.rawcall, 0xfffff0, "lua", skynet.pack())
		T.eq(skynet.packstring(1, "a") == skynet.packstring(1, "a"), true, "packstring")
		T.eq(select(2, skynet.unpack(skynet.packstring(1, "a"))), "a", "unpack string")
	end)
end
