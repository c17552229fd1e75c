-- skynet.sharemap: a sproto-typed table written by one service, read by others;
-- changes show only after commit, removed fields disappear, readers are read-only,
-- a reader keeps up with a writer committing while it reads, everything freed.
local skynet = require "skynet"
local sharemap = require "skynet.sharemap"
local stm = require "skynet.stm"

local mode = ...

if mode == "reader" then
	local reader
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, cmd, a, b)
			if cmd == "init" then
				reader = sharemap.reader(a, b)
				skynet.ret()
			elseif cmd == "get" then
				local changed = reader:update()
				local tags = reader.tags and table.concat(reader.tags, "+") or "-"
				local pos = reader.pos and (reader.pos.x .. "/" .. reader.pos.y) or "-"
				skynet.retpack(string.format("%s %s %s %s %s %s", changed, reader.name,
					reader.hp, pos, tags, reader.alive))
			elseif cmd == "write" then
				local ok, err = pcall(function() reader.hp = 1 end)
				skynet.retpack(ok, err)
			elseif cmd == "poll" then
				-- update until hp reaches a; every state seen must be one commit
				local seen, consistent, last = 0, true, -1
				while reader.hp < a do
					if reader:update() then
						seen = seen + 1
						local hp, pos = reader.hp, reader.pos
						consistent = consistent and pos.x == hp and pos.y == -hp
							and reader.name == "p" .. hp and hp >= last
						last = hp
					end
					skynet.yield()
				end
				skynet.retpack(seen, consistent, reader.hp)
			elseif cmd == "exit" then
				reader = nil
				skynet.ret()
				skynet.exit()
			end
		end)
	end)
	return
end

package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

T.run(function()
	sharemap.register(assert(skynet.getenv "sharemap_sp"))
	local w = sharemap.writer("player", {
		name = "ann", hp = 10, pos = { x = 1, y = 2 }, tags = { "a", "b" }, alive = true,
	})
	local r1 = skynet.newservice(SERVICE_NAME, "reader")
	skynet.call(r1, "lua", "init", "player", w:copy())
	local function get()
		return skynet.call(r1, "lua", "get")
	end
	T.eq(get(), "false ann 10 1/2 a+b true", "the reader starts at the writer's state")

	w.hp = 9
	T.eq(w.hp, 9, "the writer reads its own fields")
	T.eq(get(), "false ann 10 1/2 a+b true", "nothing visible before commit")
	w:commit()
	T.eq(get(), "true ann 9 1/2 a+b true", "visible after commit")
	T.eq(get(), "false ann 9 1/2 a+b true", "no change: update is false")

	w.tags = nil
	w.pos = { x = 5, y = 6 }
	w.alive = false
	w:commit()
	T.eq(get(), "true ann 9 5/6 - false", "a removed field disappears")
	local keys = {}
	for k in pairs(w) do
		keys[#keys + 1] = k
	end
	table.sort(keys)
	T.seq(keys, { "alive", "hp", "name", "pos" }, "pairs over the writer's fields")
	local ok, err = skynet.call(r1, "lua", "write")
	T.eq(ok, false, "a reader is read-only")
	T.check(tostring(err):find("read-only", 1, true), "read-only error: " .. tostring(err))

	-- a reader in this service too
	local local_reader = sharemap.reader("player", w:copy())
	T.eq(local_reader.pos.x, 5, "a local reader")
	w.hp = 8
	w:commit()
	local changed, fields = local_reader:update()
	T.eq(changed, true, "local update")
	T.eq(fields.hp, 8, "update returns the fields' table too")
	T.eq(local_reader.hp, 8, "local reader sees the commit")

	-- a writer committing while a reader on the other worker updates
	local N = 2000
	local r2 = skynet.newservice(SERVICE_NAME, "reader")
	w.hp, w.name, w.pos = 0, "p0", { x = 0, y = 0 }
	w:commit()
	skynet.call(r2, "lua", "init", "player", w:copy())
	local result
	skynet.fork(function()
		result = table.pack(skynet.call(r2, "lua", "poll", N))
	end)
	for i = 1, N do
		w.hp, w.name, w.pos = i, "p" .. i, { x = i, y = -i }
		w:commit()
		if i % 50 == 0 then
			skynet.yield()
		end
	end
	while not result do
		skynet.sleep(1)
	end
	local seen, consistent, hp = table.unpack(result)
	T.eq(hp, N, "the reader reached the last commit")
	T.check(consistent, "every state the reader saw was one whole commit")
	T.check(seen >= 1, "the reader saw " .. tostring(seen) .. " commits")

	skynet.call(r1, "lua", "exit")
	skynet.call(r2, "lua", "exit")
	w, local_reader = nil, nil
	local o, v, t
	for _ = 1, 300 do
		collectgarbage()
		o, v, t = stm.live()
		if o + v + t == 0 then
			break
		end
		skynet.sleep(1)
	end
	T.eq(o + v + t, 0, "every stm object, version and token freed")
end)
