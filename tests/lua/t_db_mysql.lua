-- Exercises skynet.db.mysql against a real MariaDB (config: mysql_port; user
-- app/apppw, database skytest, max_allowed_packet >= 64M) and against raw fake
-- peers. Logs "MYSQL FAIL <what>" per failed check, "MYSQL DONE failures=N".
local skynet = require "skynet"
local socket = require "skynet.socket"
local mysql = require "skynet.db.mysql"
local aux = require "skynet.mysqlaux"

local port = tonumber(skynet.getenv "mysql_port")
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local U = require "t_db_util"("MYSQL")
local check, eq, within = U.check, U.eq, U.within

local function dump(v)
	if type(v) ~= "table" then
		return tostring(v)
	end
	local t = {}
	for k, x in pairs(v) do
		t[#t + 1] = tostring(k) .. "=" .. dump(x)
	end
	table.sort(t)
	return "{" .. table.concat(t, ",") .. "}"
end

local conf = { host = "127.0.0.1", port = port, user = "app", password = "apppw", database = "skytest" }

local function test_queries()
	local connects = 0
	local c = setmetatable({ on_connect = function(db)
		connects = connects + 1
		db:query "set names utf8mb4"
	end }, { __index = conf })
	local db = mysql.connect(c)
	eq(connects, 1, "on_connect")
	check(db:server_ver():find("MariaDB", 1, true), "server_ver " .. tostring(db:server_ver()))
	local r = db:query "drop table if exists t"
	check(r.server_status, "ok packet " .. dump(r))
	r = db:query [[create table t (id int auto_increment primary key, name varchar(100),
		score double, big bigint unsigned, small tinyint, d datetime(6), dt date, tm time,
		dec1 decimal(10,2), b longblob, n int null)]]
	eq(r.affected_rows, 0, "create")
	r = db:query [[insert into t (name, score, big, small, d, dt, tm, dec1, b) values
		('alice', 1.5, 18446744073709551615, -5, '2024-02-29 13:14:15.123456', '2024-02-29',
		 '-838:59:59', 12.34, 'x'), ('bob', 2, 7, 100, '1999-12-31 23:59:59', '1999-12-31',
		 '01:02:03', -1.5, null)]]
	eq(r.affected_rows, 2, "insert affected")
	eq(r.insert_id, 1, "insert id")
	local rows = db:query "select * from t order by id"
	eq(#rows, 2, "select rows")
	local a = rows[1]
	eq(a.name, "alice", "text string")
	eq(a.score, 1.5, "text double")
	eq(a.small, -5, "text tinyint")
	eq(a.dec1, 12.34, "text decimal")
	eq(a.d, "2024-02-29 13:14:15.123456", "text datetime")
	eq(a.tm, "-838:59:59", "text time")
	eq(rows[2].b, nil, "text NULL")
	eq(rows[2].n, nil, "text NULL 2")
	-- compact arrays
	db:set_compact_arrays(true)
	rows = db:query "select id, name from t order by id"
	check(rows[1][1] == 1 and rows[1][2] == "alice", "compact " .. dump(rows))
	db:set_compact_arrays(false)
	-- several result sets
	r = db:query "select 1 as a; select 'two' as b; update t set n = 1 where id = 2"
	check(r.multiresultset and r[1][1].a == 1 and r[2][1].b == "two" and r[3].affected_rows == 1,
		"multi result " .. dump(r))
	-- errors as results
	r = db:query "select * from nosuch"
	check(r.badresult and r.errno == 1146 and r.sqlstate == "42S02" and r.err:find("doesn't exist"),
		"error result " .. dump(r))
	r = db:query "select 1 as a; select * from nosuch"
	check(r.multiresultset and r.badresult and r.errno == 1146 and r[1][1].a == 1, "error in 2nd result " .. dump(r))
	eq(db:query("select 5 as x")[1].x, 5, "usable after errors")
	-- quote_sql_str through the server
	local nasty = "a'b\"c\\d\0e\nf\rg\tz\26é"
	eq(mysql.quote_sql_str "it's", "'it\\'s'", "quote_sql_str")
	r = db:query("select " .. mysql.quote_sql_str(nasty) .. " as v")
	eq(r[1] and r[1].v, nasty, "quoted round trip")
	-- ping
	r = db:ping()
	check(type(r) == "table" and r.server_status, "ping " .. dump(r))
	-- concurrent callers
	local left, got = 40, {}
	for i = 1, 40 do
		skynet.fork(function()
			got[i] = db:query("select " .. i .. " as v")[1].v
			left = left - 1
		end)
	end
	while left > 0 do
		skynet.sleep(1)
	end
	for i = 1, 40 do
		eq(got[i], i, "concurrent " .. i)
	end
	return db, function()
		return connects
	end
end

local function test_prepared(db)
	local stmt = db:prepare "select ? + ? as s, ? as t, ? as n"
	eq(stmt.param_count, 4, "param_count")
	eq(stmt.field_count, 3, "field_count")
	eq(#stmt.params, 4, "params")
	eq(stmt.fields[2] and stmt.fields[2].name, "t", "fields")
	local r = db:execute(stmt, 1, 2.5, "x", nil)
	check(r[1] and r[1].s == 3.5 and r[1].t == "x" and r[1].n == nil, "execute " .. dump(r))
	local ok, err = pcall(db.execute, db, stmt, 1)
	check(not ok and tostring(err):find("param_count"), "wrong arg count " .. tostring(err))
	db:stmt_close(stmt)
	r = db:execute(stmt, 1, 2, "x", nil)
	check(r.badresult and r.errno == 1243, "execute after close " .. dump(r))
	-- binary rows of every column type
	stmt = db:prepare "select * from t where id >= ? order by id"
	r = db:execute(stmt, 1)
	local a = r[1]
	check(a, "binary rows " .. dump(r))
	if a then
		eq(a.id, 1, "bin int")
		eq(a.name, "alice", "bin varchar")
		eq(a.score, 1.5, "bin double")
		eq(a.big, 18446744073709551615.0, "bin bigint unsigned")
		eq(a.small, -5, "bin tinyint signed")
		eq(a.d, "2024-02-29 13:14:15.123456", "bin datetime(6)")
		eq(a.dt, "2024-02-29", "bin date")
		eq(a.tm, "-838:59:59", "bin time")
		eq(a.dec1, 12.34, "bin decimal")
		eq(a.b, "x", "bin blob")
		eq(a.n, nil, "bin NULL")
		eq(r[2].tm, "01:02:03", "bin time 2")
		eq(r[2].d, "1999-12-31 23:59:59", "bin datetime")
		eq(r[2].n, 1, "bin int set")
	end
	eq(db:stmt_reset(stmt).server_status ~= nil, true, "stmt_reset ok")
	-- an insert through a statement, with booleans and floats
	local ins = db:prepare "insert into t (name, score, small) values (?, ?, ?)"
	r = db:execute(ins, "carol", 0.25, true)
	check(r.affected_rows == 1 and r.insert_id == 3, "execute insert " .. dump(r))
	r = db:query "select score, small from t where name = 'carol'"
	check(r[1] and r[1].score == 0.25 and r[1].small == 1, "inserted " .. dump(r))
	db:stmt_close(ins)
	-- a statement error
	r = db:prepare "select * from nosuch where x = ?"
	check(r.badresult and r.errno == 1146, "prepare error " .. dump(r))
	-- multiple results from a procedure through execute
	db:query "drop procedure if exists p2"
	db:query "create procedure p2() begin select 1 as one; select 2 as two; end"
	local call = db:prepare "call p2()"
	r = db:execute(call)
	check(r.multiresultset and r.mulitresultset and r[1][1].one == 1 and r[2][1].two == 2, "procedure results " .. dump(r))
	db:stmt_close(call)
	db:stmt_close(stmt)
end

local function test_big(db)
	-- > 16 MiB both ways, by query (text) and by statement (binary)
	local big = string.rep("0123456789abcdef", 20 * 65536 + 3) -- 20 MiB + 48 bytes
	local r = db:query("insert into t (name, b) values ('big', " .. mysql.quote_sql_str(big) .. ")")
	check(r.affected_rows == 1, "big insert " .. dump(r))
	r = db:query "select b from t where name = 'big'"
	local back = r[1] and r[1].b
	eq(back and #back, #big, "big select size")
	check(back == big, "big select bytes")
	local ins = db:prepare "insert into t (name, b) values ('big2', ?)"
	r = db:execute(ins, big .. "!")
	check(r.affected_rows == 1, "big execute insert " .. dump(r))
	local sel = db:prepare "select b from t where name = ?"
	r = db:execute(sel, "big2")
	back = r[1] and r[1].b
	eq(back and #back, #big + 1, "big binary row size")
	check(back == big .. "!", "big binary row bytes")
	-- exact multiples of the packet size (an empty packet must follow)
	-- a row of exactly 0xffffff bytes: 4-byte length + 16777211
	r = db:query "select repeat('q', 16777211) as v"
	eq(r[1] and #r[1].v, 16777211, "row of exactly 0xffffff bytes")
	-- a statement of exactly 0xffffff bytes: 1 command byte + sql
	local head, tail = "select '", "' as v"
	local pad = string.rep("p", 0xffffff - 1 - #head - #tail)
	r = db:query(head .. pad .. tail)
	eq(r[1] and #r[1].v, #pad, "query of exactly 0xffffff bytes")
	db:stmt_close(ins)
	db:stmt_close(sel)
	db:query "delete from t where name like 'big%'"
	-- max_packet_size bounds what we accept: an error and a closed link, then the next
	-- call reconnects
	local small = mysql.connect(setmetatable({ max_packet_size = 1024 * 1024 }, { __index = conf }))
	local ok, err = pcall(small.query, small, "select repeat('z', 2 * 1024 * 1024) as v")
	check(not ok and tostring(err):find("exceeds max_packet_size", 1, true), "limit: " .. tostring(err))
	r = small:query "select 7 as v"
	eq(r[1] and r[1].v, 7, "reconnected after the limit")
	small:disconnect()
end

local function test_reconnect(db, connects)
	local before = connects()
	local id = db:query("select connection_id() as id")[1].id
	local killer = mysql.connect(conf)
	killer:query("kill " .. id)
	skynet.sleep(20)
	local ok, r = pcall(db.query, db, "select connection_id() as id")
	if not ok then
		ok, r = pcall(db.query, db, "select connection_id() as id")
	end
	check(ok and r[1].id ~= id, "reconnected " .. dump(r))
	eq(connects(), before + 1, "on_connect after reconnect")
	-- in flight: a sleeping query whose connection is killed
	id = db:query("select connection_id() as id")[1].id
	skynet.fork(function()
		skynet.sleep(20)
		killer:query("kill " .. id)
	end)
	local okq, rq = within(20, "killed in flight", db.query, db, "select sleep(30)")
	check(not okq or (type(rq) == "table" and (rq.badresult or (rq[1] and rq[1]["sleep(30)"] == 1))),
		"killed in flight: " .. tostring(okq) .. " " .. dump(rq))
	killer:disconnect()
	-- wrong password
	local okp, errp = pcall(mysql.connect, setmetatable({ password = "nope" }, { __index = conf }))
	check(not okp and tostring(errp):find("1045", 1, true) and tostring(errp):find("Access denied", 1, true),
		"wrong password: " .. tostring(errp))
end

---------------------------------------------------------------- fake servers

local function pkt(seq, payload)
	return string.pack("<I3B", #payload, seq) .. payload
end

local SCRAMBLE = "abcdefgh" .. "ijklmnopqrst"
local rsa_pem, rsa_out = nil, skynet.getenv "mysql_rsa_out"
local rsa_n = 0
do
	local path = skynet.getenv "mysql_rsa_pem"
	local f = path and io.open(path, "rb")
	if f then
		rsa_pem = f:read "a"
		f:close()
	end
end

local function greeting(plugin, proto)
	return string.pack("<Bz I4 c8 x I2 B I2 I2 B c10 c13 z", proto or 10, "5.7.99-fake", 77,
		SCRAMBLE:sub(1, 8), 0xf7ff, 33, 2, 0x81ff | 0x8 | 0x0008, 21, string.rep("\0", 10),
		SCRAMBLE:sub(9) .. "\0", plugin)
end

local OK = "\0\0\0\2\0\0\0"

local function read_pkt(fd)
	local h = socket.read(fd, 4)
	if not h then
		return nil
	end
	local len, seq = string.unpack("<I3B", h)
	return socket.read(fd, len), seq
end

local function fake_server(serve)
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

-- greet, accept the native-password login (checking the token), then answer each
-- query with `reply(sql)` (raw bytes).
local function native_server(reply)
	return fake_server(function(fd)
		socket.write(fd, pkt(0, greeting "mysql_native_password"))
		local auth = read_pkt(fd)
		if not auth then
			return
		end
		local user, token = string.unpack("z s1", auth, 33)
		if token ~= aux.native_token("pw", SCRAMBLE) then
			socket.write(fd, pkt(2, "\xff\x15\x04#28000Access denied (fake)"))
			return
		end
		socket.write(fd, pkt(2, OK))
		while true do
			local q = read_pkt(fd)
			if not q then
				return
			end
			local out, close_after = reply(q:sub(2))
			if out == nil then
				return
			end
			socket.write(fd, out)
			if close_after then
				return
			end
		end
	end)
end

local function test_hostile()
	local fconf = { host = "127.0.0.1", user = "u", password = "pw" }
	local function connect_to(p, extra)
		local c = { port = p }
		for k, v in pairs(fconf) do
			c[k] = v
		end
		for k, v in pairs(extra or {}) do
			c[k] = v
		end
		return mysql.connect(c)
	end
	-- the link drops right after the greeting / during auth
	local p1, c1 = fake_server(function(fd)
		socket.write(fd, pkt(0, greeting "mysql_native_password"))
		read_pkt(fd)
	end)
	local ok, err = within(10, "drop during auth", connect_to, p1)
	check(not ok and tostring(err):find("Connect to", 1, true), "drop during auth: " .. tostring(err))
	-- an unknown handshake protocol; a truncated greeting
	local p2, c2 = fake_server(function(fd)
		socket.write(fd, pkt(0, "\9garbage\0"))
		read_pkt(fd)
	end)
	ok, err = within(10, "bad greeting", connect_to, p2)
	check(not ok and tostring(err):find("unsupported handshake protocol", 1, true), "bad greeting: " .. tostring(err))
	local p3, c3 = fake_server(function(fd)
		socket.write(fd, pkt(0, "\10" .. "5.7\0" .. "abc"))
		read_pkt(fd)
	end)
	ok, err = within(10, "short greeting", connect_to, p3)
	check(not ok and tostring(err):find("mysql: bad handshake", 1, true), "short greeting: " .. tostring(err))
	-- wrong token: the fake refuses with an ERR packet
	local prf, crf = native_server(function() end)
	ok, err = within(10, "fake refuses", connect_to, prf, { password = "bad" })
	crf()
	check(not ok and tostring(err):find("Access denied (fake)", 1, true), "fake refuses: " .. tostring(err))
	-- malformed replies: each closes the connection with an error naming it
	local cases = {
		{ "truncated", function() return pkt(1, "\1") .. string.pack("<I3B", 100, 2) .. "short", true end, "" },
		{ "order", function() return pkt(5, OK) end, "out of order" },
		{ "lenenc", function() return pkt(1, "\1") .. pkt(2, "\3def\200abc") end, "past the end" },
		{ "bad length byte", function() return pkt(1, "\xff\xff") end, nil },
		{ "empty", function() return string.pack("<I3B", 0, 1) end, "empty packet" },
		{ "eof expected", function() return pkt(1, "\1") .. pkt(2, "\3def\0\0\0\1a\0\12\33\0\0\0\0\0\253\0\0\0\0") .. pkt(3, "\1x") end, "missing EOF" },
		{ "too big", function() return string.pack("<I3B", 0xffffff, 1) end, "exceeds max_packet_size" },
		{ "row garbage", function() return pkt(1, "\1") .. pkt(2, "\3def\0\0\0\1a\0\12\33\0\0\0\0\0\253\0\0\0\0") .. pkt(3, "\xfe\0\0\2\0") .. pkt(4, "\252\255\255x") end, "past the end" },
	}
	local n = 0
	local port, close_port = native_server(function(sql)
		n = n + 1
		if sql == "select 1" then
			return pkt(1, "\1") .. pkt(2, "\3def\0\0\0\1a\0\12\33\0\0\0\0\0\253\0\0\0\0") .. pkt(3, "\xfe\0\0\2\0")
				.. pkt(4, "\0011") .. pkt(5, "\xfe\0\0\2\0")
		end
		return cases[tonumber(sql)][2]()
	end)
	local db = connect_to(port, { max_packet_size = 1024 * 1024 })
	local r = db:query "select 1"
	check(r[1] and r[1].a == "1", "fake select " .. dump(r))
	for i, case in ipairs(cases) do
		-- (the truncated case: the peer closes mid-packet; a socket error)
		ok, err = within(10, case[1], db.query, db, tostring(i))
		local want = case[1] == "truncated" and "" or "mysql:"
		check(not ok and tostring(err):find(want, 1, true) and (not case[3] or tostring(err):find(case[3], 1, true)),
			case[1] .. ": " .. tostring(err))
		r = select(2, within(10, case[1] .. " then", db.query, db, "select 1"))
		check(type(r) == "table" and r[1] and r[1].a == "1", case[1] .. ": usable after " .. dump(r))
	end
	eq(n, #cases * 2 + 1, "fake queries served")
	close_port()
	db:disconnect()
	-- caching_sha2_password: fast path, full path refused, and an auth switch
	local function sha2_server(mode)
		return fake_server(function(fd)
			socket.write(fd, pkt(0, greeting "caching_sha2_password"))
			local auth = read_pkt(fd)
			if not auth then
				return
			end
			local _, token, _, plugin = string.unpack("z s1 z z", auth, 33)
			if mode == "switch" then
				local salt = "ZYXWVUTSRQPONMLKJIHG"
				socket.write(fd, pkt(2, "\xfemysql_native_password\0" .. salt .. "\0"))
				local t2 = read_pkt(fd)
				if t2 ~= aux.native_token("pw", salt) then
					socket.write(fd, pkt(4, "\xff\x15\x04#28000bad switch token"))
					return
				end
				socket.write(fd, pkt(4, OK))
			elseif plugin ~= "caching_sha2_password" or token ~= aux.sha2_token("pw", SCRAMBLE) then
				socket.write(fd, pkt(2, "\xff\x15\x04#28000bad sha2 token"))
				return
			elseif mode == "fast" then
				socket.write(fd, pkt(2, "\1\3") .. pkt(3, OK))
			else -- full authentication: key request (unless the client has it), cipher
				socket.write(fd, pkt(2, "\1\4"))
				local p3, seq = read_pkt(fd)
				if p3 == "\2" then
					socket.write(fd, pkt(seq + 1, "\1" .. (rsa_pem or "no key")))
					p3, seq = read_pkt(fd)
				end
				if not p3 then
					return
				end
				rsa_n = rsa_n + 1
				if rsa_out then
					local f = assert(io.open(rsa_out .. rsa_n, "wb"))
					f:write(p3)
					f:close()
				end
				socket.write(fd, pkt(seq + 1, OK))
			end
			while true do
				local q = read_pkt(fd)
				if not q then
					return
				end
				socket.write(fd, pkt(1, OK))
			end
		end)
	end
	local pf, cf = sha2_server "fast"
	ok, r = within(10, "sha2 fast", function()
		local d = connect_to(pf)
		local res = d:ping()
		d:disconnect()
		return res
	end)
	check(ok and type(r) == "table" and r.server_status == 2, "sha2 fast auth: " .. dump(r))
	local pfull, cfull = sha2_server "full"
	if rsa_pem then
		-- the key fetched from the server, then given in the options; the Rust side
		-- decrypts both ciphers with openssl
		for _, extra in ipairs { {}, { server_public_key = rsa_pem } } do
			ok, r = within(10, "sha2 full", function()
				local d = connect_to(pfull, extra)
				local res = d:ping()
				d:disconnect()
				return res
			end)
			check(ok and type(r) == "table" and r.server_status == 2, "sha2 full auth: " .. dump(r))
		end
		eq(rsa_n, 2, "full authentications")
		-- a key that is not one: a clear error
		ok, err = within(10, "sha2 bad key", connect_to, pfull, { server_public_key = "garbage" })
		check(not ok and tostring(err):find("bad PEM public key", 1, true), "bad key: " .. tostring(err))
	else
		skynet.error "MYSQL SKIPPED RSA (no openssl)"
	end
	local psw, csw = sha2_server "switch"
	ok, r = within(10, "auth switch", function()
		local d = connect_to(psw)
		local res = d:ping()
		d:disconnect()
		return res
	end)
	check(ok and type(r) == "table", "auth switch: " .. dump(r))
	c1()
	c2()
	c3()
	cf()
	cfull()
	csw()
end

skynet.start(function()
	skynet.error "MYSQL BASELINE"
	skynet.sleep(50)
	local ok, err = xpcall(function()
		local db, connects = test_queries()
		test_prepared(db)
		test_big(db)
		test_reconnect(db, connects)
		db:disconnect()
		test_hostile()
	end, debug.traceback)
	check(ok, "raised: " .. tostring(err))
	collectgarbage()
	skynet.sleep(50)
	skynet.error("MYSQL DONE failures=" .. U.failures)
end)
