-- skynet.sharetable: load from a table, a string and a file; query, queryall, update
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local sharetable = require "skynet.sharetable"
local core = require "skynet.sharetable.core"
local U = require "t_share_util"

T.run(function()
	local docs0 = core.stat()
	local src = U.sample()
	sharetable.loadtable("cfg", src)
	local t = sharetable.query "cfg"
	T.eq(type(t), "table", "a table")
	T.check(core.is_sharedtable(t), "is_sharedtable")
	T.check(not core.is_sharedtable {}, "a plain table is not shared")
	T.eq(U.canon(t), U.canon(src), "every key and value")
	T.eq(#t, #src, "#")
	T.eq(t.array[4], "forty", "nested")
	T.eq(t.binary, src.binary, "binary string")
	T.eq(math.type(t.big), "integer", "integer")
	T.errors("read-only", "read-only", function()
		t.x = 1
	end)
	T.eq(sharetable.query "nope", nil, "unknown name")

	-- sources: Lua text with arguments, a file with arguments (standard libraries only)
	sharetable.loadstring("text", "local a, b = ... return { sum = a + b, list = { ... } }", 20, 22)
	local text = sharetable.query "text"
	T.eq(text.sum, 42, "loadstring with arguments")
	T.eq(#text.list, 2, "loadstring: ... as a list")
	local path = os.tmpname()
	local f = assert(io.open(path, "w"))
	f:write "local n = ... return { n = n, up = string.upper 'x', skynet = type(skynet) }"
	f:close()
	sharetable.loadfile(path, 7)
	local ft = sharetable.query(path)
	os.remove(path)
	T.eq(ft.n, 7, "loadfile with an argument")
	T.eq(ft.up, "X", "the standard libraries")
	T.eq(ft.skynet, "nil", "a private state")
	T.errors("not a table", "call failed", sharetable.loadstring, "bad", "return 1")
	T.errors("syntax", "call failed", sharetable.loadstring, "bad", "return {")

	-- queryall
	local all = sharetable.queryall { "cfg", "text", "nope" }
	T.eq(all.text.sum, 42, "queryall list")
	T.eq(all.nope, nil, "queryall skips unknown names")
	local n = 0
	for _ in pairs(sharetable.queryall()) do
		n = n + 1
	end
	T.eq(n, 3, "queryall: every name")

	-- many readers
	local r = {}
	for i = 1, 6 do
		r[i] = skynet.newservice("t_sharetable_reader", "cfg")
		T.eq(skynet.call(r[i], "lua", "canon"), U.canon(src), "reader " .. i)
	end

	-- update: nothing changes until a service asks for it
	local array, nested = t.array, t.nested
	local new = { int = 43, array = { 1, 2 }, nested = 7 }
	sharetable.loadtable("cfg", new)
	T.eq(t.int, 42, "the old version until update")
	T.eq(sharetable.query("cfg").int, 43, "a new query sees the new version")
	sharetable.update "cfg"
	T.eq(t.int, 43, "update: the same table shows the new version")
	T.eq(array[2], 2, "update: a held subtable too")
	T.errors("vanished subtable", "doesn't exist after update", function()
		return nested.a
	end)
	T.eq(skynet.call(r[1], "lua", "canon"), U.canon(src), "a reader keeps its version")
	T.eq(skynet.call(r[1], "lua", "update"), U.canon(new), "until it updates")

	-- versions are freed once replaced and unread
	for i = 2, #r do
		skynet.call(r[i], "lua", "update")
	end
	all, array, nested = nil, nil, nil
	collectgarbage()
	collectgarbage()
	T.eq(core.stat(), docs0 + 3, "old versions freed (cfg, text, file)")
	for i = 1, #r do
		skynet.kill(r[i])
	end
end)
