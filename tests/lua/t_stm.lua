-- skynet.stm: a reader in another service sees the newest version (never an older
-- one, and "no change" until the writer updates); strings and payloads; a writer
-- updating while readers on the other worker read; every version and object freed
-- (stm.live()).
local skynet = require "skynet"
local stm = require "skynet.stm"

local mode = ...

if mode == "reader" then
	local reader
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, cmd, arg)
			if cmd == "init" then
				reader = stm.newcopy(arg)
				skynet.ret()
			elseif cmd == "read" then
				skynet.retpack(reader(skynet.unpack))
			elseif cmd == "poll" then
				-- read until version `arg`; every version seen must be whole and newer
				local seen, last, whole, newer, reads = 0, -1, true, true, 0
				while last < arg do
					for _ = 1, 50 do
						reads = reads + 1
						local changed, i, seven, s = reader(skynet.unpack)
						if changed then
							seen = seen + 1
							whole = whole and seven == i * 7 and s == string.rep("x", i % 100)
							newer = newer and i > last
							last = i
						end
					end
					skynet.yield()
				end
				skynet.retpack(seen, last, whole, newer, reads)
			elseif cmd == "exit" then
				skynet.ret()
				skynet.exit()
			end
		end)
	end)
	return
end

package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local function live(what, objects, versions, tokens)
	local o, v, t
	for _ = 1, 300 do
		collectgarbage()
		o, v, t = stm.live()
		if o == objects and v == versions and t == tokens then
			break
		end
		skynet.sleep(1)
	end
	T.eq(string.format("%d objects, %d versions, %d tokens", o, v, t),
		string.format("%d objects, %d versions, %d tokens", objects, versions, tokens), what)
end

-- a remote read as one string: "false", or "true,<values>"
local function read(r)
	local t = table.pack(skynet.call(r, "lua", "read"))
	for i = 1, t.n do
		t[i] = tostring(t[i])
	end
	return table.concat(t, ",", 1, t.n)
end

T.run(function()
	-- another service reads what this one writes
	local obj = stm.new(skynet.pack(1, 2, 3))
	local token = stm.copy(obj)
	live("a writer and a token", 1, 1, 1)
	local r1 = skynet.newservice(SERVICE_NAME, "reader")
	skynet.call(r1, "lua", "init", token)
	live("the token adopted", 1, 1, 0)
	T.eq(read(r1), "true,1,2,3", "first read")
	T.eq(read(r1), "false", "no update: no change, the callback is not called")
	for i = 1, 3 do
		obj(skynet.pack("v", i))
	end
	live("the reader holds the version it saw, the writer the newest", 1, 2, 0)
	T.eq(read(r1), "true,v,3", "the newest version, not an older one")
	live("one version left", 1, 1, 0)
	T.eq(read(r1), "false", "and then no change again")

	-- strings, ud, errors
	local w = stm.new("hello")
	local r = stm.newcopy(stm.copy(w))
	local ok, s = r(skynet.tostring)
	T.eq(ok, true, "string message: changed")
	T.eq(s, "hello", "string message")
	w("world")
	local _, s2, ud = r(function(msg, sz, u)
		return skynet.tostring(msg, sz), u
	end, "UD")
	T.eq(s2 .. ud, "worldUD", "callback gets msg, sz, ud")
	local t2 = stm.copy(w)
	local r2 = stm.newcopy(t2)
	T.errors("a token adopted twice", "Invalid stm copy", stm.newcopy, t2)
	T.errors("copy of a non-writer", "bad argument #1", stm.copy, r2)
	T.errors("read without a function", "bad argument #2", r, nil)
	w("x1")
	T.errors("a reader called from its own callback", "called from its own callback", r, function()
		return r(skynet.tostring)
	end)
	T.eq(r(skynet.tostring), false, "that version was taken by the failed read")
	w("x2")
	T.errors("a raising callback", "boom", r, function()
		error "boom"
	end)
	w("x3")
	T.eq(select(2, r(skynet.tostring)), "x3", "usable after errors")
	T.eq(select(2, r2(skynet.tostring)), "x3", "a second reader of the same object")
	w = nil
	collectgarbage()
	collectgarbage()
	T.eq(r(skynet.tostring), false, "writer gone: nothing to read")
	T.eq(r(skynet.tostring), false, "still nothing")
	r, r2 = nil, nil
	live("the string object freed", 1, 1, 0)

	-- the writer goes away while another service still reads
	obj = nil
	collectgarbage()
	collectgarbage()
	T.eq(read(r1), "false", "remote reader: writer gone")
	skynet.call(r1, "lua", "exit")
	live("everything freed", 0, 0, 0)

	-- a writer updating while two readers on the other worker read
	local N = 5000
	local obj3 = stm.new(skynet.pack(0, 0, ""))
	local readers, results, done = {}, {}, 0
	for k = 1, 2 do
		readers[k] = skynet.newservice(SERVICE_NAME, "reader")
		skynet.call(readers[k], "lua", "init", stm.copy(obj3))
	end
	for k = 1, 2 do
		skynet.fork(function()
			results[k] = table.pack(skynet.call(readers[k], "lua", "poll", N))
			done = done + 1
		end)
	end
	skynet.yield()
	for i = 1, N do
		obj3(skynet.pack(i, i * 7, string.rep("x", i % 100)))
		if i % 100 == 0 then
			skynet.yield()
		end
	end
	while done < 2 do
		skynet.sleep(1)
	end
	for k = 1, 2 do
		local seen, last, whole, newer, reads = table.unpack(results[k])
		T.eq(last, N, "reader " .. k .. " reached the last version")
		T.check(whole, "reader " .. k .. ": every version whole")
		T.check(newer, "reader " .. k .. ": versions only move forward")
		T.check(seen >= 1 and seen <= N, "reader " .. k .. ": saw " .. seen .. " versions in " .. reads .. " reads")
		skynet.call(readers[k], "lua", "exit")
	end
	obj3 = nil
	live("all freed after the concurrent run", 0, 0, 0)
end)
