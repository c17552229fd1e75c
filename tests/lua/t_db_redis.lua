-- Exercises skynet.db.redis against a real redis-server (port/password from the
-- config: redis_port, redis_pass; user "app"/"apppw" exists) and against raw fake
-- peers that misbehave. Logs "REDIS FAIL <what>" per failed check, "REDIS DONE".
local skynet = require "skynet"
local socket = require "skynet.socket"
local redis = require "skynet.db.redis"

local port = tonumber(skynet.getenv "redis_port")
local pass = skynet.getenv "redis_pass"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local U = require "t_db_util"("REDIS")
local check, eq, within = U.check, U.eq, U.within

-- A raw peer: `serve(fd)` runs for each accepted connection. Returns its port and a
-- closer.
local function fake_peer(serve)
	local lid, _, p = socket.listen("127.0.0.1", 0)
	socket.start(lid, function(fd)
		socket.start(fd)
		skynet.fork(function()
			serve(fd)
			socket.close(fd)
		end)
	end)
	return p, function()
		socket.close(lid)
	end
end

local function test_commands()
	local db = redis.connect { host = "127.0.0.1", port = port, auth = pass, db = 3 }
	eq(db:flushdb(), "OK", "flushdb status")
	eq(db:set("A", "hello"), "OK", "set")
	eq(db:get "A", "hello", "get")
	eq(db:get "nothing", nil, "get missing")
	eq(db:exists "A", true, "exists true")
	eq(db:exists "B", false, "exists false")
	eq(db:incr "n", 1, "incr integer")
	eq(db:incrby("n", 41), 42, "incrby")
	eq(db:sadd("S", "one"), 1, "sadd")
	eq(db:sismember("S", "one"), true, "sismember true")
	eq(db:sismember("S", "two"), false, "sismember false")
	-- hmset both argument forms, numbers turned into strings
	local t = {}
	for i = 1, 100 do
		t[#t + 1] = "k" .. i
		t[#t + 1] = i
	end
	eq(db:hmset("H", table.unpack(t)), "OK", "hmset varargs")
	table.insert(t, 1, "H2")
	eq(db:hmset(t), "OK", "hmset table")
	eq(db:hlen "H", 100, "hlen")
	eq(db:hget("H2", "k77"), "77", "hget")
	local all = db:hgetall "H"
	eq(#all, 200, "hgetall array")
	local vals = db:hvals "H2"
	eq(#vals, 100, "hvals")
	-- binary-safe values, and a big one (several socket reads)
	local bin = "a\r\nb\0c$*-+:"
	db:set("bin", bin)
	eq(db:get "bin", bin, "binary value")
	local big = string.rep("0123456789abcdef", 5 * 65536) -- 5 MiB
	db:set("big", big)
	local back = db:get "big"
	eq(back and #back, #big, "big value size")
	check(back == big, "big value bytes")
	-- empty string and nil argument
	db:set("empty", "")
	eq(db:get "empty", "", "empty string")
	-- transactions: arrays of replies
	eq(db:multi(), "OK", "multi")
	eq(db:get "A", "QUEUED", "queued")
	db:incr "n"
	local r = db:exec()
	check(type(r) == "table" and r[1] == "hello" and r[2] == 43, "exec array")
	-- an error reply raises with Redis's text; the link stays usable
	local ok, err = pcall(db.incr, db, "A")
	check(not ok and tostring(err):find("ERR value is not an integer", 1, true), "error reply: " .. tostring(err))
	ok, err = pcall(db.lpush, db, "H", "x")
	check(not ok and tostring(err):find("WRONGTYPE", 1, true), "wrongtype: " .. tostring(err))
	eq(db:get "A", "hello", "usable after error")
	-- array replies with nil elements
	local m = db:mget("A", "nothing", "bin")
	check(m[1] == "hello" and m[2] == nil and m[3] == bin, "mget with nil")
	-- pipeline: last reply, and every reply with resp
	eq(db:pipeline { { "set", "p1", "v1" }, { "incr", "pc" }, { "get", "p1" } }, "v1", "pipeline last")
	local resp = {}
	db:pipeline({ { "incr", "pc" }, { "incr", "A" }, { "get", "p1" } }, resp)
	check(#resp == 3 and resp[1].ok and resp[1].out == 2, "pipeline resp 1")
	check(resp[2].ok == false and tostring(resp[2].out):find("ERR"), "pipeline resp 2 is the error")
	check(resp[3].ok and resp[3].out == "v1", "pipeline resp 3")
	-- concurrent callers get their own replies
	local left, got = 50, {}
	for i = 1, 50 do
		skynet.fork(function()
			got[i] = db:echo("e" .. i)
			left = left - 1
		end)
	end
	while left > 0 do
		skynet.sleep(1)
	end
	for i = 1, 50 do
		eq(got[i], "e" .. i, "concurrent " .. i)
	end
	-- reconnect: another client kills this link; the next call reconnects, and
	-- AUTH + SELECT run again (the key lives in db 3)
	local killer = redis.connect { host = "127.0.0.1", port = port, auth = pass }
	local id = db:client "id"
	eq(killer:client("kill", "id", id), 1, "client kill")
	skynet.sleep(20)
	local ok2, v = pcall(db.get, db, "A")
	if not ok2 then -- the drop may surface on this call; the next one reconnects
		ok2, v = pcall(db.get, db, "A")
	end
	check(ok2 and v == "hello", "reconnected to db 3: " .. tostring(v))
	check(db:client "id" ~= id, "a new connection")
	-- a command in flight when the link dies: an error, not a hang
	local id2 = db:client "id"
	local ok3, err3 = within(10, "killed in flight", function()
		skynet.fork(function()
			skynet.sleep(10)
			killer:client("kill", "id", id2)
		end)
		return db:blpop("never", 0)
	end)
	check(not ok3, "blocked command fails when killed: " .. tostring(err3))
	eq(db:get "A", "hello", "usable again")
	-- username + password (ACL)
	local u = redis.connect { host = "127.0.0.1", port = port, username = "app", auth = "apppw", db = 3 }
	eq(u:get "A", "hello", "acl user")
	eq(u:acl "whoami", "app", "acl whoami")
	u:disconnect()
	-- wrong password: connect raises
	local okb, errb = pcall(redis.connect, { host = "127.0.0.1", port = port, auth = "wrong" })
	check(not okb and (tostring(errb):find("WRONGPASS") or tostring(errb):find("invalid")), "bad password: " .. tostring(errb))
	killer:disconnect()
	return db
end

local function test_watch(db)
	local w = redis.watch { host = "127.0.0.1", port = port, auth = pass }
	w:subscribe("foo", "bar")
	w:psubscribe "hello.*"
	local got = {}
	local done = false
	skynet.fork(function()
		while #got < 6 do
			got[#got + 1] = table.pack(w:message())
		end
		done = true
	end)
	skynet.sleep(20) -- the subscriptions are confirmed by message()
	db:publish("foo", "1")
	db:publish("bar", "2")
	db:publish("hello.x", "3")
	db:publish("other", "nope")
	db:publish("foo", "4")
	for _ = 1, 50 do
		if #got >= 4 then
			break
		end
		skynet.sleep(10)
	end
	check(got[1] and got[1][1] == "1" and got[1][2] == "foo" and got[1].n == 2, "message foo")
	check(got[2] and got[2][1] == "2" and got[2][2] == "bar", "message bar")
	check(got[3] and got[3][1] == "3" and got[3][2] == "hello.x" and got[3][3] == "hello.*", "pmessage")
	check(got[4] and got[4][1] == "4", "message after a non-subscribed channel")
	-- unsubscribe bar: its messages stop
	w:unsubscribe "bar"
	skynet.sleep(20)
	db:publish("bar", "lost")
	db:publish("foo", "5")
	for _ = 1, 50 do
		if #got >= 5 then
			break
		end
		skynet.sleep(10)
	end
	check(got[5] and got[5][1] == "5", "unsubscribe: " .. tostring(got[5] and got[5][1]))
	-- the watch link is killed: message() reconnects and re-subscribes
	local id
	local list = db:client "list"
	for line in list:gmatch "[^\n]+" do
		if line:find("cmd=psubscribe", 1, true) or line:find("cmd=subscribe", 1, true) or line:find("cmd=unsubscribe", 1, true) then
			id = line:match "id=(%d+)"
		end
	end
	check(id, "found the watch client")
	if id then
		db:client("kill", "id", id)
	end
	local seen = false
	for _ = 1, 100 do
		db:publish("foo", "6")
		if #got >= 6 then
			seen = true
			break
		end
		skynet.sleep(10)
	end
	check(seen and got[6][1] == "6", "watch re-subscribed after a drop")
	w:disconnect()
end

local function test_hostile()
	-- the peer closes after reading AUTH: connect fails at once
	local p1, c1 = fake_peer(function(fd)
		socket.readline(fd, "\r\n")
		socket.close(fd)
	end)
	local ok, err = within(10, "drop during auth", redis.connect, { host = "127.0.0.1", port = p1, auth = "x" })
	check(not ok, "drop during auth is an error: " .. tostring(err))
	-- the peer answers half a line then closes
	local p2, c2 = fake_peer(function(fd)
		socket.readline(fd, "\r\n")
		socket.write(fd, "+O")
		skynet.sleep(5)
		socket.close(fd)
	end)
	ok, err = within(10, "half reply during auth", redis.connect, { host = "127.0.0.1", port = p2, auth = "x", db = 1 })
	check(not ok, "half reply during auth: " .. tostring(err))
	-- AUTH answered, then the link drops before SELECT (upstream issue #1513: the
	-- login's next request used to wait on its own reconnect)
	local p2b, c2b = fake_peer(function(fd)
		for _ = 1, 4 do -- *2 $4 AUTH $1 x
			socket.readline(fd, "\r\n")
		end
		socket.write(fd, "+OK\r\n")
	end)
	ok, err = within(10, "drop between AUTH and SELECT", redis.connect, { host = "127.0.0.1", port = p2b, auth = "x", db = 1 })
	check(not ok, "drop between AUTH and SELECT: " .. tostring(err))
	c2b()
	-- garbage and absurd lengths: an error naming the problem; the link is closed and
	-- the next call reconnects
	local replies = {
		"?what\r\n",
		"$99999999999\r\n",
		"$abc\r\n",
		"$3\r\nabcXY",
		":notanumber\r\n",
		"*2\r\n?x\r\n",
	}
	local conns = 0
	local p3, c3 = fake_peer(function(fd)
		conns = conns + 1
		local n = conns
		while true do
			local line = socket.readline(fd, "\r\n")
			if not line then
				return
			end
			if line:sub(1, 1) == "$" then
				local arg = socket.readline(fd, "\r\n")
				if arg == "PING" or arg == "ping" then
					local rep = replies[n]
					if rep then
						socket.write(fd, rep)
					else
						socket.write(fd, "+PONG\r\n")
					end
				end
			end
		end
	end)
	local db = redis.connect { host = "127.0.0.1", port = p3 }
	for i, rep in ipairs(replies) do
		local okg, errg = within(10, "garbage " .. i, db.ping, db)
		check(not okg and tostring(errg):find("redis: bad reply", 1, true), "garbage " .. rep:sub(1, 6):gsub("\r\n", "") .. ": " .. tostring(errg))
	end
	local okp, pong = within(10, "after garbage", db.ping, db)
	check(okp and pong == "PONG", "usable after garbage: " .. tostring(pong))
	eq(conns, #replies + 1, "one connection per garbage reply")
	db:disconnect()
	-- a line that never ends: the buffer limit closes the link, the caller gets an error
	local p4, c4 = fake_peer(function(fd)
		socket.readline(fd, "\r\n")
		local chunk = string.rep("x", 1 << 20)
		for _ = 1, 80 do
			if not socket.write(fd, chunk) then
				return
			end
			skynet.yield()
		end
	end)
	local db4 = redis.connect { host = "127.0.0.1", port = p4 }
	local okl, errl = within(30, "endless line", db4.ping, db4)
	check(not okl, "endless line is an error: " .. tostring(errl))
	db4:disconnect()
	-- a peer that closes while several callers wait: all of them get errors
	local p5, c5 = fake_peer(function(fd)
		socket.readline(fd, "\r\n")
		skynet.sleep(20)
		socket.close(fd)
	end)
	local db5 = redis.connect { host = "127.0.0.1", port = p5 }
	local errs, left = 0, 5
	for _ = 1, 5 do
		skynet.fork(function()
			local okx = pcall(db5.get, db5, "x")
			if not okx then
				errs = errs + 1
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
	eq(left, 0, "waiters all released")
	eq(errs, 5, "waiters all failed")
	db5:disconnect()
	-- nobody listening
	local okc, errc = pcall(redis.connect, { host = "127.0.0.1", port = 1 })
	check(not okc and tostring(errc):find("Connect to 127.0.0.1:1 failed", 1, true), "refused: " .. tostring(errc))
	c1()
	c2()
	c3()
	c4()
	c5()
end

skynet.start(function()
	skynet.error "REDIS BASELINE"
	skynet.sleep(50)
	local ok, err = xpcall(function()
		local db = test_commands()
		test_watch(db)
		db:disconnect()
		test_hostile()
	end, debug.traceback)
	check(ok, "raised: " .. tostring(err))
	collectgarbage()
	skynet.sleep(50)
	skynet.error("REDIS DONE failures=" .. U.failures)
end)
