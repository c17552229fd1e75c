-- skynet.sharedata: every value type, proxies, many readers, update, delete, no leak
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local sharedata = require "skynet.sharedata"
local core = require "skynet.sharedata.core"
local U = require "t_share_util"

local function readers(n, name)
	local r = {}
	for i = 1, n do
		r[i] = skynet.newservice("t_sharedata_reader", name)
	end
	return r
end

local function values(obj, src)
	for k, v in pairs(src) do
		if type(v) ~= "table" then
			T.eq(obj[k], v, "value " .. tostring(k))
			T.eq(math.type(obj[k]), math.type(v), "number subtype " .. tostring(k))
		end
	end
	T.eq(obj.no, false, "false is a value")
	T.eq(obj.missing, nil, "missing key")
	T.eq(obj[2.0], "two", "float key with an integer value")
	T.eq(obj[1.5], nil, "non-integer key")
	T.eq(obj[true], nil, "boolean key")
	T.eq(#obj, #src, "#")
	T.eq(#obj.array, 5, "# nested")
	T.eq(obj.array[5].n, 50, "table in an array")
	local seq = {}
	for i, v in ipairs(obj.array) do
		seq[i] = type(v) == "table" and "t" or tostring(v)
	end
	T.seq(seq, { "10", "20", "30", "forty", "t" }, "ipairs order")
	T.eq(obj.nested.a.b.c.d, "deep", "nested")
	T.check(obj.nested == obj.nested, "a nested table is the same object each time")
	T.eq(type(obj.nested), "table", "nested tables are tables")
	local n, m = 0, 0
	for _ in pairs(obj) do
		n = n + 1
	end
	for _ in pairs(src) do
		m = m + 1
	end
	T.eq(n, m, "pairs visits every key")
	T.eq(U.canon(obj), U.canon(src), "pairs gives every key and value")
	T.eq(table.concat(obj.array, ",", 1, 4), "10,20,30,forty", "table.concat through __index")
end

T.run(function()
	local docs0 = core.stat()
	local src = U.sample()
	sharedata.new("cfg", src)
	local obj = sharedata.query "cfg"
	T.check(sharedata.query "cfg" == obj, "query caches the object")
	values(obj, src)

	-- read-only
	T.errors("write", "read-only", function()
		obj.x = 1
	end)
	T.errors("nested write", "read-only", function()
		obj.array[1] = 1
	end)
	T.errors("write over a nested table", "read-only", function()
		obj.array = 1
	end)
	T.check(type(obj.array) == "table", "still the shared table")
	T.eq(rawget(obj, "int"), nil, "raw access sees no data")
	T.eq(rawlen(obj), 0, "raw length")

	-- skynet.pack goes through __pairs, as upstream's tables did
	local packed = skynet.unpack(skynet.packstring(obj))
	T.eq(U.canon(packed), U.canon(src), "pack/unpack of an object")

	-- deepcopy
	local dc = sharedata.deepcopy "cfg"
	T.eq(getmetatable(dc), nil, "deepcopy is a plain table")
	T.eq(U.canon(dc), U.canon(src), "deepcopy contents")
	T.eq(sharedata.deepcopy("cfg", "nested", "a", "b", "c", "d"), "deep", "deepcopy of a value")
	T.eq(sharedata.deepcopy("cfg", "array", 5).n, 50, "deepcopy of a subtable")
	T.eq(sharedata.deepcopy("cfg", "nope"), nil, "deepcopy of a missing key")

	-- Lua source: globals, a returned table with arguments, a file
	sharedata.new("globals", "x = 1 y = { 2, 3 }")
	local g = sharedata.query "globals"
	T.eq(g.x, 1, "source globals")
	T.eq(g.y[2], 3, "source globals table")
	sharedata.new("ret", "local a, b = ... return { sum = a + b }", 20, 22)
	T.eq(sharedata.query("ret").sum, 42, "source returns a table, with arguments")
	local path = os.tmpname()
	local f = assert(io.open(path, "w"))
	f:write "return { from = 'file', list = { 1, 2, 3 } }"
	f:close()
	sharedata.new("file", "@" .. path)
	os.remove(path)
	T.eq(sharedata.query("file").from, "file", "from a file")
	T.eq(#sharedata.query("file").list, 3, "from a file: array")
	sharedata.new("nothing")
	T.eq(next(sharedata.deepcopy "nothing"), nil, "nil gives an empty set")

	-- what can't be shared (the builder's errors, then as a caller sees them)
	T.errors("function value", "can't share a value of type function", core.new, { f = print })
	local cyc = { list = {} }
	cyc.list.back = cyc
	T.errors("cycle", "contains itself", core.new, cyc)
	T.errors("table key", "can't share a key of type table", core.new, { [{}] = 1 })
	T.errors("boolean key", "can't share a key of type boolean", core.new, { [true] = 1 })
	T.errors("float key", "non-integer key", core.new, { [0.5] = 1 })
	local deep = {}
	for _ = 1, 300 do
		deep = { deep }
	end
	T.errors("too deep", "nested too deep", core.new, deep)
	T.errors("bad source", "call failed", sharedata.new, "bad", "return {")
	T.errors("unknown name", "call failed", sharedata.query, "unknown")
	T.eq(core.stat(), docs0 + 5, "failed builds leave nothing behind")
	local shared = { 1, 2 }
	sharedata.new("dag", { a = shared, b = shared })
	T.eq(sharedata.query("dag").b[2], 2, "a table referenced twice")

	-- many readers see the same data
	local r = readers(8, "cfg")
	for i = 1, #r do
		T.eq(skynet.call(r[i], "lua", "canon"), U.canon(src), "reader " .. i)
	end
	T.eq(skynet.call(r[1], "lua", "get", "binary"), src.binary, "binary string in a reader")

	-- update: every holder sees the new version in place
	T.eq(skynet.call(r[1], "lua", "hold", "array"), true, "hold a child")
	local array, nested = obj.array, obj.nested
	local new = { int = 43, array = { 1, 2 }, nested = "gone", added = { x = 1 } }
	sharedata.update("cfg", new)
	U.wait(function()
		return obj.int == 43
	end)
	for i = 1, #r do
		U.wait(function()
			return skynet.call(r[i], "lua", "canon") == U.canon(new)
		end)
	end
	T.eq(obj.int, 43, "update seen through the same object")
	T.eq(obj.str, nil, "old keys gone")
	T.eq(array[1], 1, "a held child follows the update")
	T.eq(#array, 2, "a held child: new length")
	T.check(obj.array == array, "same child object after update")
	T.eq(obj.added.x, 1, "new nested table")
	T.errors("vanished child", "doesn't exist after update", function()
		return nested.a
	end)
	T.eq(obj.nested, "gone", "the key holds a value now")
	for i = 1, #r do
		T.eq(skynet.call(r[i], "lua", "canon"), U.canon(new), "reader " .. i .. " after update")
	end
	local ok, v = skynet.call(r[1], "lua", "held", 2)
	T.check(ok and v == 2, "reader's held child follows")

	-- delete: holders keep reading the last version, queries fail
	sharedata.delete "cfg"
	U.wait(function()
		return not pcall(sharedata.query, "cfg")
	end)
	T.eq(obj.int, 43, "a deleted set stays readable for its holders")
	T.errors("query after delete", "call failed", sharedata.query, "cfg")
	T.eq(skynet.call(r[2], "lua", "get", "int"), 43, "reader after delete")
	for i = 1, #r do
		skynet.kill(r[i])
	end

	-- no leak: many versions, readers following them; only the last stays
	sharedata.new("churn", { v = 0 })
	local cr = readers(4, "churn")
	local churn = sharedata.query "churn"
	skynet.sleep(5)
	local before = core.stat()
	for i = 1, 100 do
		sharedata.update("churn", { v = i, pad = string.rep("p", 1000) .. i })
		if i % 10 == 0 then
			skynet.sleep(1)
		end
	end
	U.wait(function()
		return churn.v == 100
	end)
	T.eq(churn.v, 100, "last version")
	for i = 1, #cr do
		T.eq(skynet.call(cr[i], "lua", "get", "v"), 100, "churn reader " .. i)
	end
	sharedata.flush()
	U.wait(function()
		return core.stat() == before
	end)
	local after = core.stat()
	T.eq(after, before, "old versions freed (docs alive before/after 100 updates)")
	for i = 1, #cr do
		skynet.kill(cr[i])
	end
	-- killed readers gave their references back (lua_close runs the finalizers)
	sharedata.update("churn", { v = "end" })
	U.wait(function()
		return core.stat() == before
	end)
	T.eq(core.stat(), before, "killed readers hold nothing")

	-- readers on several workers read while versions come and go
	sharedata.new("stress", { v = 0, list = { 0, 1, 2 }, tag = "v0" })
	local sr = readers(4, "stress")
	local done = 0
	local results = {}
	for i = 1, #sr do
		skynet.fork(function()
			results[i] = { skynet.call(sr[i], "lua", "stress", 20000) }
			done = done + 1
		end)
	end
	local stress_before = core.stat()
	for i = 1, 200 do
		sharedata.update("stress", { v = i, list = { i, i + 1, i + 2 }, tag = "v" .. i })
		skynet.yield()
	end
	while done < #sr do
		skynet.sleep(1)
	end
	skynet.error(string.format("stress: versions seen by the readers: %d %d %d %d",
		results[1][2], results[2][2], results[3][2], results[4][2]))
	for i = 1, #sr do
		T.eq(results[i][1], 0, "stress reader " .. i .. ": inconsistent reads")
		T.check(results[i][2] > 1, "stress reader " .. i .. " saw " .. results[i][2] .. " versions")
	end
	U.wait(function()
		return core.stat() == stress_before
	end)
	T.eq(core.stat(), stress_before, "stress: old versions freed")
	for i = 1, #sr do
		skynet.kill(sr[i])
	end

	-- the deleted cfg: our object is the last holder
	obj, array, nested = nil, nil, nil
	collectgarbage()
	collectgarbage()
	skynet.error(string.format("docs alive: start %d, end %d", docs0, core.stat()))
end)
