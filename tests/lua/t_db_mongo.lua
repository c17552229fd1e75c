-- Exercises skynet.db.mongo against tests/db_fake_mongod.py (config: mongo_port;
-- user "sky" / password "p@ss,w=rd"). Logs "MONGO FAIL <what>" per failed check,
-- "MONGO DONE failures=N".
local skynet = require "skynet"
local mongo = require "skynet.db.mongo"
local bson = require "bson"

local port = tonumber(skynet.getenv "mongo_port")
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local U = require "t_db_util"("MONGO")
local check, eq, within = U.check, U.eq, U.within

local conf = { host = "127.0.0.1", port = port, username = "sky", password = "p@ss,w=rd" }

local function fake_log(c)
	return c:runCommand("fakeLog").log
end

local function main()
	-- authentication
	local okb, errb = pcall(mongo.client, { host = "127.0.0.1", port = port, username = "sky", password = "wrong" })
	check(not okb and tostring(errb):find("authentication failed", 1, true), "wrong password: " .. tostring(errb))
	local okn, errn = pcall(mongo.client, { host = "127.0.0.1", port = port, username = "nobody", password = "p@ss,w=rd" })
	check(not okn, "unknown user: " .. tostring(errn))
	local c = mongo.client(conf)
	check(tostring(c):find("mongo client", 1, true), "tostring")
	local r = c:runCommand "ismaster"
	eq(r.ok, 1, "runCommand after SCRAM login")
	fake_log(c)

	local coll = c.game.players
	eq(tostring(coll), "[mongo collection : game.players]", "collection name")
	-- unsafe insert: moreToCome, w = 0, no reply
	coll:insert { name = "a", level = 1 }
	local log = fake_log(c)
	check(log[1] and log[1].cmd == "insert" and log[1].flags == 2 and log[1].w == 0 and log[1].db == "game",
		"unsafe insert on the wire")
	-- safe inserts, a duplicate key
	local id = bson.objectid()
	local ok, err, reply = coll:safe_insert { _id = id, name = "b", level = 2, bin = bson.binary "\0\1\2" }
	check(ok and err == nil and reply.n == 1, "safe_insert " .. tostring(err))
	ok, err = coll:safe_insert { _id = id, name = "dup" }
	check(not ok and tostring(err):find("E11000", 1, true), "duplicate key: " .. tostring(err))
	local docs = {}
	for i = 1, 250 do
		docs[i] = { name = "p" .. i, level = i % 10, score = i }
	end
	ok, err = coll:safe_batch_insert(docs)
	check(ok, "safe_batch_insert " .. tostring(err))
	check(docs[1]._id ~= nil, "ids assigned")
	-- findOne with projection; values round trip
	local one = coll:findOne({ _id = id })
	check(one and one.name == "b" and one.level == 2 and one._id == id and one.bin == bson.binary "\0\1\2", "findOne")
	one = coll:findOne({ name = "p7" }, { score = 1 })
	check(one and one.score == 7 and one.name == nil, "projection")
	eq(coll:findOne { name = "none" }, nil, "findOne miss")
	-- cursors: sort, skip, limit, batches over getMore with int64 cursor ids
	local cur = coll:find({ level = { ["$gt"] = -1 } }):sort({ level = -1 }, { score = 1 }):skip(2):batchSize(7)
	local n, last = 0, nil
	local ordered = true
	while cur:hasNext() do
		local d = cur:next()
		n = n + 1
		if last and d.level == last.level and (d.score or -1) < (last.score or -1) then
			ordered = false
		end
		if last and d.level > last.level then
			ordered = false
		end
		last = d
	end
	eq(n, 250, "cursor over batches (252 docs, skip 2)")
	check(ordered, "sorted by level desc, score asc")
	log = fake_log(c)
	local getmores = 0
	for _, l in ipairs(log) do
		if l.cmd == "getMore" then
			getmores = getmores + 1
		end
	end
	eq(getmores, 35, "getMore calls for batches of 7")
	cur = coll:find({}):limit(5)
	n = 0
	while cur:hasNext() do
		cur:next()
		n = n + 1
	end
	eq(n, 5, "limit")
	local okh, errh = pcall(function() return coll:find({}):next() end)
	check(not okh and tostring(errh):find("Call hasNext first", 1, true), "next before hasNext")
	eq(coll:find({ level = 3 }):count(), 25, "count")
	eq(coll:find({ level = 3 }):skip(5):limit(10):count(true), 10, "count with limit and skip")
	-- a cursor closed early: killCursors goes out
	cur = coll:find({}):batchSize(3)
	cur:hasNext()
	cur:close()
	log = fake_log(c)
	local killed = false
	for _, l in ipairs(log) do
		if l.cmd == "killCursors" and l.flags == 2 then
			killed = true
		end
	end
	check(killed, "killCursors")
	-- updates
	ok, err, reply = coll:safe_update({ name = "b" }, { ["$set"] = { level = 99 }, ["$inc"] = { score = 5 } })
	check(ok and reply.n == 1, "safe_update " .. tostring(err))
	one = coll:findOne { name = "b" }
	check(one.level == 99 and one.score == 5, "update applied")
	ok, err, reply = coll:safe_update({ name = "new" }, { ["$set"] = { level = 1 } }, true)
	check(ok and reply.upserted and #reply.upserted == 1, "upsert")
	ok, err, reply = coll:safe_update({ level = 3 }, { ["$set"] = { flag = true } }, false, true)
	check(ok and reply.n == 25, "multi update " .. tostring(reply and reply.n))
	coll:update({ name = "a" }, { ["$set"] = { level = 50 } })
	check(coll:findOne({ name = "a" }).level == 50, "unsafe update")
	ok, err, reply = coll:safe_batch_update { { query = { name = "p1" }, update = { ["$set"] = { x = 1 } } },
		{ query = { name = "p2" }, update = { ["$set"] = { x = 2 } } } }
	check(ok and reply.n == 2, "safe_batch_update")
	-- findAndModify
	r = coll:findAndModify { query = { name = "p3" }, update = { ["$inc"] = { score = 100 } }, new = true }
	check(r.ok == 1 and r.value and r.value.score == 103, "findAndModify")
	-- deletes
	ok, err, reply = coll:safe_delete({ level = 4 }, true)
	check(ok and reply.n == 1, "safe_delete single")
	ok, err, reply = coll:safe_delete { level = 4 }
	check(ok and reply.n == 24, "safe_delete all")
	coll:delete { name = "a" }
	eq(coll:findOne { name = "a" }, nil, "unsafe delete")
	ok, err, reply = coll:safe_batch_delete({ { name = "p5" }, { name = "p6" } })
	check(ok and reply.n == 2, "safe_batch_delete")
	-- indexes
	r = coll:createIndex { { level = 1 }, { score = -1 }, unique = true }
	eq(r.ok, 1, "createIndex")
	r = coll:createIndex({ name = 1 }, { unique = true })
	r = coll:createIndexes({ "x" }, { { y = -1 }, name = "why" })
	eq(r.ok, 1, "createIndexes")
	local idx = coll.database:runCommand("listIndexes", coll.name).cursor.firstBatch
	check(#idx == 4, "4 indexes, got " .. #idx)
	check(idx[1] and idx[1].name == "level_1_score_-1" and idx[1].unique == true and idx[1].key.level == 1 and idx[1].key.score == -1, "compound index")
	check(idx[2] and idx[2].name == "name_1" and idx[2].unique == true, "old-style index")
	check(idx[3] and idx[3].name == "x_1" and idx[4].name == "why", "index names")
	eq(coll:dropIndex("why").ok, 1, "dropIndex")
	-- aggregate
	local agg = coll:aggregate({ { ["$match"] = { level = 3 } } }):sort({ score = -1 }):limit(4)
	n = 0
	local top
	while agg:hasNext() do
		local d = agg:next()
		top = top or d
		n = n + 1
	end
	eq(n, 4, "aggregate limit")
	eq(top and top.score, 243, "aggregate sort")
	eq(coll:aggregate({ { ["$match"] = { level = 3 } } }):count(), 25, "aggregate count")
	-- concurrent callers on one connection, replies matched by request id
	local left, got = 30, {}
	for i = 1, 30 do
		skynet.fork(function()
			local d = coll:findOne { name = "p" .. (100 + i) }
			got[i] = d and d.score
			left = left - 1
		end)
	end
	while left > 0 do
		skynet.sleep(1)
	end
	for i = 1, 30 do
		eq(got[i], (100 + i) % 10 ~= 4 and 100 + i or nil, "concurrent " .. i) -- level 4 was deleted
	end
	-- errors from the server are results / raise where upstream raises
	r = c.game:runCommand "nosuchcommand"
	check(r.ok == 0 and r.errmsg:find("no such command", 1, true), "unknown command")
	-- drop
	eq(coll:drop().ok, 1, "drop")
	eq(coll:findOne {}, nil, "dropped")
	-- hostile replies: an error for the caller, the connection is closed, the next
	-- call reconnects (and logs in again)
	for _, kind in ipairs { "hugelength", "tinylength", "opcode", "section", "baddoc", "truncate", "close" } do
		local okm, errm = within(10, kind, c.runCommand, c, "misbehave", kind)
		check(not okm and (kind == "truncate" or kind == "close" or tostring(errm):find("mongo:", 1, true)),
			kind .. ": " .. tostring(errm))
		local okp, rp = within(10, kind .. " then", c.runCommand, c, "ismaster")
		check(okp and type(rp) == "table" and rp.ok == 1, kind .. ": usable after " .. tostring(rp))
	end
	-- several callers waiting when the connection breaks: all get errors
	local errs
	errs, left = 0, 5
	skynet.fork(function()
		local okx = pcall(c.runCommand, c, "misbehave", "close")
		if not okx then
			errs = errs + 1
		end
		left = left - 1
	end)
	for _ = 1, 4 do
		skynet.fork(function()
			local okx, rx = pcall(c.runCommand, c, "ismaster")
			if not okx then
				errs = errs + 1
			else
				errs = errs + (rx.ok == 1 and 1 or 0) -- sent after the close: served by a new link
			end
			left = left - 1
		end)
	end
	for _ = 1, 100 do
		if left == 0 then
			break
		end
		skynet.sleep(10)
	end
	eq(left, 0, "all waiters released")
	c:disconnect()
	-- a replica-set list whose first host is down: the next one is used
	local rs = mongo.client { rs = {
		{ host = "127.0.0.1", port = 1, username = conf.username, password = conf.password },
		{ host = "127.0.0.1", port = port },
	} }
	eq(rs:runCommand("ismaster").ok, 1, "replica set: the next host")
	eq(rs.port, 1, "client keeps its configured first host")
	rs:disconnect()
	-- nobody there
	local okc, errc = pcall(mongo.client, { host = "127.0.0.1", port = 1 })
	check(not okc and tostring(errc):find("Connect to 127.0.0.1:1 failed", 1, true), "refused: " .. tostring(errc))
end

skynet.start(function()
	skynet.error "MONGO BASELINE"
	skynet.sleep(50)
	local ok, err = xpcall(main, debug.traceback)
	check(ok, "raised: " .. tostring(err))
	collectgarbage()
	skynet.sleep(50)
	skynet.error("MONGO DONE failures=" .. U.failures)
end)
