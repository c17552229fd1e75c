-- skynet.datasheet: values, in-place updates, many readers, versions collected
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local builder = require "skynet.datasheet.builder"
local datasheet = require "skynet.datasheet"
local dump = require "skynet.datasheet.dump"
local service = require "skynet.service"
local U = require "t_share_util"

-- datasheet keys: the array part and strings
local function sample()
	return {
		int = 42,
		neg = -7,
		big = math.maxinteger,
		small = math.mininteger,
		i33 = 1 << 33,
		float = 0.1,
		exact = 0.5,
		huge = 1e300,
		inf = math.huge,
		str = "hello",
		empty = "",
		binary = "a\0b\1\255\0",
		long = string.rep("x", 1000),
		yes = true,
		no = false,
		array = { 10, 20, 30, "forty", { n = 50 } },
		nested = { a = { b = { c = { d = "deep" } } } },
		"one", "two", "three",
	}
end

-- how many versions of `name` the datasheet service still keeps
local function versions(name)
	local info = skynet.call(service.query "datasheet", "debug", "INFO")
	local text = info[name] or ""
	local n = 0
	for _ in text:gmatch "readers" do
		n = n + 1
	end
	return n, text
end

T.run(function()
	local src = sample()
	-- the document format round-trips every value exactly
	local back = dump.undump(dump.dump(src))
	T.eq(U.canon(back), U.canon(src), "dump/undump")
	T.errors("sparse key", "neither a string nor in the array part", dump.dump, { [10] = 1 })
	T.errors("function", "can't store a function", dump.dump, { f = print })
	local cyc = {}
	cyc.x = cyc
	T.errors("cycle", "contains itself", dump.dump, cyc)

	builder.new("sheet", src)
	local obj = datasheet.query "sheet"
	T.check(datasheet.query "sheet" == obj, "query caches the object")
	for k, v in pairs(src) do
		if type(v) ~= "table" then
			T.eq(obj[k], v, "value " .. tostring(k))
			T.eq(math.type(obj[k]), math.type(v), "number subtype " .. tostring(k))
		end
	end
	T.eq(#obj, 3, "#")
	T.eq(obj.nested.a.b.c.d, "deep", "nested")
	T.eq(#obj.array, 5, "# nested")
	T.eq(obj.array[5].n, 50, "table in an array")
	T.eq(U.canon(obj), U.canon(src), "pairs")
	local seq = {}
	for i, v in ipairs(obj) do
		seq[i] = v
	end
	T.seq(seq, { "one", "two", "three" }, "ipairs")

	-- readers
	local r = {}
	for i = 1, 6 do
		r[i] = skynet.newservice("t_datasheet_reader", "sheet")
		T.eq(skynet.call(r[i], "lua", "canon"), U.canon(src), "reader " .. i)
	end
	T.eq(skynet.call(r[1], "lua", "get", "binary"), src.binary, "binary string in a reader")

	-- update: tables change in place, vanished paths error
	skynet.call(r[1], "lua", "hold", "array")
	local array, nested = obj.array, obj.nested
	local new = { int = 43, array = { 1, 2 }, nested = 7, added = { x = 1 }, "uno" }
	builder.update("sheet", new)
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
	T.eq(#obj, 1, "new length")
	T.eq(array[2], 2, "a held table shows the new version")
	T.eq(#array, 2, "a held table: new length")
	T.eq(obj.added.x, 1, "new nested table")
	T.errors("vanished table", "Invalid proxy", function()
		return nested.a
	end)
	for i = 1, #r do
		T.eq(skynet.call(r[i], "lua", "canon"), U.canon(new), "reader " .. i .. " after update")
	end
	local ok, c = skynet.call(r[1], "lua", "held")
	T.check(ok and c == U.canon(new.array), "reader's held table follows")

	-- versions: each replaced one goes once no reader holds it
	for i = 1, 20 do
		builder.update("sheet", { v = i, list = { i, i + 1 } })
	end
	U.wait(function()
		return obj.v == 20 and versions "sheet" == 1
	end)
	T.eq(obj.v, 20, "last version")
	T.eq(skynet.call(r[2], "lua", "get", "v"), 20, "reader: last version")
	local n, text = versions "sheet"
	T.eq(n, 1, "only the current version is kept (" .. text .. ")")

	-- readers that exit or are killed give their versions back
	T.eq(skynet.call(r[1], "lua", "exit"), true, "reader exits")
	skynet.kill(r[2])
	skynet.sleep(5)
	builder.update("sheet", { v = "after" })
	U.wait(function()
		return obj.v == "after" and versions "sheet" == 1
	end)
	T.eq(obj.v, "after", "update after readers left")
	n, text = versions "sheet"
	T.eq(n, 1, "versions after readers left (" .. text .. ")")

	T.errors("unknown sheet", "call failed", datasheet.query, "nope")
	builder.new("late", { 1 })
	T.eq(datasheet.query("late")[1], 1, "a sheet created after a failed query")
end)
