-- skynet.db.mysql: a MySQL/MariaDB client over skynet.socketchannel (upstream's API).
--
--   local mysql = require "skynet.db.mysql"
--   local db = mysql.connect { host, port = 3306, user, password, database,
--       charset = "utf8mb4", max_packet_size = 1024 * 1024, compact_arrays = false,
--       on_connect = function(db) ... end, server_public_key = pem (optional) }
--   db:query(sql)             -> rows | ok-table | { res1, res2, multiresultset = true }
--                                | { badresult = true, errno, sqlstate, err }
--   db:prepare(sql)           -> stmt { prepare_id, param_count, field_count, params, fields }
--   db:execute(stmt, ...)     -> as query (binary protocol)
--   db:stmt_reset(stmt), db:stmt_close(stmt), db:ping(), db:server_ver(),
--   db:set_compact_arrays(bool), db:disconnect(), mysql.quote_sql_str(s)
--
-- Protocol (MySQL client/server protocol 4.1, text and binary result sets):
-- * Packets: 3-byte length, 1-byte sequence id. A payload of 0xffffff bytes or more
--   is split into 0xffffff-byte packets ending with a shorter (maybe empty) one, in
--   both directions, so statements and values beyond 16 MiB work. Every reply packet
--   must carry the next sequence id.
-- * Login: Handshake v10; the reply is computed for the server's auth plugin:
--   mysql_native_password, caching_sha2_password (fast path when the server has the
--   password cached; otherwise the full path: the password XOR the scramble,
--   RSA-OAEP encrypted with the server's public key, fetched from the server unless
--   opts.server_public_key (PEM) is given), auth switch requests for either.
-- * max_packet_size: sent to the server as upstream does, and the largest reply
--   payload we accept when given (default: 1 GiB, MySQL's largest max_allowed_packet;
--   the handshake value then stays upstream's 1 MiB).
--
-- Errors: a server ERR packet is a result ({ badresult = true, ... }) as upstream.
-- A malformed, truncated or out-of-order reply raises "mysql: ..." in the caller and
-- closes that connection (the next call reconnects); so does a dropped link. Every
-- length read from the wire is checked against the data actually there.

local socketchannel = require "skynet.socketchannel"
local aux = require "skynet.mysqlaux"

local sub = string.sub
local byte = string.byte
local char = string.char
local spack = string.pack
local sunpack = string.unpack
local format = string.format
local concat = table.concat
local tointeger = math.tointeger
local type = type
local error = error
local tostring = tostring
local tonumber = tonumber

local mysql = { _VERSION = "0.14" }
local mt = { __index = mysql }

-- Default collation id of each character set (the server's own numbering).
local CHARSET = {
	_default = 0, big5 = 1, dec8 = 3, cp850 = 4, hp8 = 6, koi8r = 7, latin1 = 8,
	latin2 = 9, swe7 = 10, ascii = 11, ujis = 12, sjis = 13, hebrew = 16, tis620 = 18,
	euckr = 19, koi8u = 22, gb2312 = 24, greek = 25, cp1250 = 26, gbk = 28, latin5 = 30,
	armscii8 = 32, utf8 = 33, ucs2 = 35, cp866 = 36, keybcs2 = 37, macce = 38,
	macroman = 39, cp852 = 40, latin7 = 41, utf8mb4 = 45, cp1251 = 51, utf16 = 54,
	utf16le = 56, cp1256 = 57, cp1257 = 59, utf32 = 60, binary = 63, geostd8 = 92,
	cp932 = 95, eucjpms = 97, gb18030 = 248,
}

local COM_QUERY = 0x03
local COM_PING = 0x0e
local COM_STMT_PREPARE = 0x16
local COM_STMT_EXECUTE = 0x17
local COM_STMT_CLOSE = 0x19
local COM_STMT_RESET = 0x1a

local CLIENT_LONG_PASSWORD = 0x1
local CLIENT_FOUND_ROWS = 0x2
local CLIENT_LONG_FLAG = 0x4
local CLIENT_CONNECT_WITH_DB = 0x8
local CLIENT_ODBC = 0x40
local CLIENT_IGNORE_SPACE = 0x100
local CLIENT_PROTOCOL_41 = 0x200
local CLIENT_INTERACTIVE = 0x400
local CLIENT_IGNORE_SIGPIPE = 0x1000
local CLIENT_TRANSACTIONS = 0x2000
local CLIENT_RESERVED = 0x4000
local CLIENT_SECURE_CONNECTION = 0x8000
local CLIENT_MULTI_STATEMENTS = 0x10000
local CLIENT_MULTI_RESULTS = 0x20000
local CLIENT_PS_MULTI_RESULTS = 0x40000
local CLIENT_PLUGIN_AUTH = 0x80000

-- Upstream's capability set (minus LOCAL_FILES: we never serve LOAD DATA LOCAL
-- requests), plus prepared-statement multi-results and pluggable auth.
local CLIENT_FLAGS = CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS | CLIENT_LONG_FLAG
	| CLIENT_CONNECT_WITH_DB | CLIENT_ODBC | CLIENT_IGNORE_SPACE | CLIENT_PROTOCOL_41
	| CLIENT_INTERACTIVE | CLIENT_IGNORE_SIGPIPE | CLIENT_TRANSACTIONS | CLIENT_RESERVED
	| CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS
	| CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH

local SERVER_MORE_RESULTS_EXISTS = 8
local MAX_CHUNK = 0xffffff
local DEFAULT_REPLY_LIMIT = 1024 * 1024 * 1024

---------------------------------------------------------------- packets

local function bad(fmt, ...)
	error("mysql: " .. format(fmt, ...), 0)
end

-- The packets carrying `payload`, first sequence id `seq`; returns the pieces (for
-- socket.write) and the sequence id the reply must start with.
local function compose(payload, seq)
	local n = #payload
	seq = seq or 0
	if n < MAX_CHUNK then
		return spack("<I3B", n, seq) .. payload, (seq + 1) & 0xff
	end
	local out = {}
	local pos = 1
	while true do
		local len = n - pos + 1
		if len > MAX_CHUNK then
			len = MAX_CHUNK
		end
		out[#out + 1] = spack("<I3B", len, seq)
		out[#out + 1] = sub(payload, pos, pos + len - 1)
		seq = (seq + 1) & 0xff
		pos = pos + len
		if len < MAX_CHUNK then
			break
		end
	end
	return out, seq
end

-- A reply reader: `st` = { seq = next expected sequence id, limit = max payload }.
local function read_packet(so, st)
	local len, seq = sunpack("<I3B", so:read(4))
	if seq ~= st.seq then
		bad("packet out of order (sequence %d, expected %d)", seq, st.seq)
	end
	st.seq = (seq + 1) & 0xff
	if len > st.limit then
		bad("reply packet of %d bytes exceeds max_packet_size %d", len, st.limit)
	end
	if len < MAX_CHUNK then
		if len == 0 then
			bad "empty packet"
		end
		return so:read(len)
	end
	local parts = { so:read(len) }
	local total = len
	repeat
		len, seq = sunpack("<I3B", so:read(4))
		if seq ~= st.seq then
			bad("packet out of order (sequence %d, expected %d)", seq, st.seq)
		end
		st.seq = (seq + 1) & 0xff
		total = total + len
		if total > st.limit then
			bad("reply packet of %d bytes exceeds max_packet_size %d", total, st.limit)
		end
		if len > 0 then
			parts[#parts + 1] = so:read(len)
		end
	until len < MAX_CHUNK
	return concat(parts)
end

-- Length-encoded integer at `pos`: value (nil for NULL), next position.
local function lenenc(data, pos)
	local first = byte(data, pos)
	if first == nil then
		bad "truncated length"
	end
	if first < 0xfb then
		return first, pos + 1
	elseif first == 0xfb then
		return nil, pos + 1
	elseif first == 0xfc then
		return sunpack("<I2", data, pos + 1)
	elseif first == 0xfd then
		return sunpack("<I3", data, pos + 1)
	elseif first == 0xfe then
		return sunpack("<I8", data, pos + 1)
	end
	bad("bad length byte 0x%02x", first)
end

local function lenenc_str(data, pos)
	local n
	n, pos = lenenc(data, pos)
	if n == nil then
		return nil, pos
	end
	local last = pos + n - 1
	if n < 0 or last > #data then
		bad("string of %d bytes past the end of a %d-byte packet", n, #data)
	end
	return sub(data, pos, last), last + 1
end

local function lenenc_bytes(n)
	if n < 0xfb then
		return char(n)
	elseif n < 0x10000 then
		return spack("<BI2", 0xfc, n)
	elseif n < 0x1000000 then
		return spack("<BI3", 0xfd, n)
	end
	return spack("<BI8", 0xfe, n)
end

local function is_eof(packet)
	return byte(packet) == 0xfe and #packet < 9
end

local function parse_err(packet)
	local errno, pos = sunpack("<I2", packet, 2)
	local sqlstate
	if sub(packet, pos, pos) == "#" then
		sqlstate = sub(packet, pos + 1, pos + 5)
		pos = pos + 6
	end
	return errno, sub(packet, pos), sqlstate
end

local function parse_ok(packet)
	local res = {}
	local pos
	res.affected_rows, pos = lenenc(packet, 2)
	res.insert_id, pos = lenenc(packet, pos)
	res.server_status, res.warning_count, pos = sunpack("<I2I2", packet, pos)
	local message = sub(packet, pos)
	if message ~= "" then
		res.message = message
	end
	return res
end

local function eof_status(packet)
	if #packet >= 5 then
		local _, status = sunpack("<I2I2", packet, 2)
		return status
	end
	return 0
end

local function parse_field(data)
	local pos = 1
	local col = {}
	for _ = 1, 4 do -- catalog, schema, table, org_table
		local _
		_, pos = lenenc_str(data, pos)
	end
	col.name, pos = lenenc_str(data, pos)
	local _
	_, pos = lenenc_str(data, pos) -- org_name
	_, pos = lenenc(data, pos) -- length of the fixed fields (0x0c)
	-- charset (2 bytes) and display length (4) are skipped; then type, flags
	local typ, flags = sunpack("<BI2", data, pos + 6)
	col.type = typ
	col.is_signed = flags & 0x20 == 0 or nil -- UNSIGNED_FLAG
	return col
end

---------------------------------------------------------------- values

local text_number = {
	[0x01] = true, [0x02] = true, [0x03] = true, [0x04] = true, [0x05] = true,
	[0x08] = true, [0x09] = true, [0x0d] = true, [0xf6] = true,
}

local function parse_text_row(data, cols, compact)
	local row = {}
	local pos = 1
	for i = 1, #cols do
		local col = cols[i]
		local v
		v, pos = lenenc_str(data, pos)
		if v ~= nil and text_number[col.type] then
			v = tonumber(v)
		end
		if compact then
			row[i] = v
		else
			row[col.name] = v
		end
	end
	return row
end

local function datetime(data, pos, with_time)
	local n = byte(data, pos)
	if n == nil then
		bad "truncated date"
	end
	pos = pos + 1
	local y, mo, d, h, mi, s, us = 0, 0, 0, 0, 0, 0, 0
	if n >= 4 then
		y, mo, d = sunpack("<I2BB", data, pos)
	end
	if n >= 7 then
		h, mi, s = sunpack("BBB", data, pos + 4)
	end
	if n >= 11 then
		us = sunpack("<I4", data, pos + 7)
	end
	if n ~= 0 and n ~= 4 and n ~= 7 and n ~= 11 then
		bad("bad date length %d", n)
	end
	if pos + n - 1 > #data then
		bad "truncated date"
	end
	local v
	if not with_time then
		v = format("%04d-%02d-%02d", y, mo, d)
	elseif us ~= 0 then
		v = format("%04d-%02d-%02d %02d:%02d:%02d.%06d", y, mo, d, h, mi, s, us)
	else
		v = format("%04d-%02d-%02d %02d:%02d:%02d", y, mo, d, h, mi, s)
	end
	return v, pos + n
end

local function time_value(data, pos)
	local n = byte(data, pos)
	if n == nil then
		bad "truncated time"
	end
	pos = pos + 1
	if n == 0 then
		return "00:00:00", pos
	end
	if n ~= 8 and n ~= 12 then
		bad("bad time length %d", n)
	end
	local neg, days, h, mi, s = sunpack("<BI4BBB", data, pos)
	local us = n == 12 and sunpack("<I4", data, pos + 8) or 0
	local v = format("%s%02d:%02d:%02d", neg == 1 and "-" or "", days * 24 + h, mi, s)
	if us ~= 0 then
		v = v .. format(".%06d", us)
	end
	return v, pos + n
end

local function int_reader(signed_fmt, unsigned_fmt)
	return function(data, pos, col)
		return sunpack(col.is_signed and signed_fmt or unsigned_fmt, data, pos)
	end
end

local function lenenc_number(data, pos)
	local v
	v, pos = lenenc_str(data, pos)
	return tonumber(v), pos
end

local binary_value = {
	[0x01] = int_reader("<i1", "<I1"),
	[0x02] = int_reader("<i2", "<I2"),
	[0x0d] = int_reader("<i2", "<I2"),
	[0x03] = int_reader("<i4", "<I4"),
	[0x09] = int_reader("<i4", "<I4"),
	[0x08] = function(data, pos, col)
		local v
		v, pos = sunpack("<i8", data, pos)
		if not col.is_signed and v < 0 then
			v = v + 18446744073709551616.0 -- unsigned beyond 2^63: a float, as text mode
		end
		return v, pos
	end,
	[0x04] = function(data, pos)
		return sunpack("<f", data, pos)
	end,
	[0x05] = function(data, pos)
		return sunpack("<d", data, pos)
	end,
	[0x07] = function(data, pos)
		return datetime(data, pos, true)
	end,
	[0x0c] = function(data, pos)
		return datetime(data, pos, true)
	end,
	[0x0a] = function(data, pos)
		return datetime(data, pos, false)
	end,
	[0x0b] = time_value,
	[0xf6] = lenenc_number,
	[0x00] = lenenc_number, -- old DECIMAL
}
for _, t in ipairs { 0x0f, 0x10, 0xf5, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff } do
	binary_value[t] = lenenc_str
end

local function parse_binary_row(data, cols, compact)
	local ncols = #cols
	local pos = 2 + (ncols + 9) // 8 -- header byte, NULL bitmap (2 reserved bits)
	if pos - 1 > #data then
		bad "truncated row"
	end
	local row = {}
	for i = 1, ncols do
		local col = cols[i]
		local bit = i + 1
		local isnull = byte(data, 2 + bit // 8) & (1 << (bit % 8)) ~= 0
		if not isnull and col.type ~= 0x06 then
			local f = binary_value[col.type]
			if f == nil then
				bad("unsupported field type %d", col.type)
			end
			local v
			v, pos = f(data, pos, col)
			if compact then
				row[i] = v
			else
				row[col.name] = v
			end
		end
	end
	return row
end

---------------------------------------------------------------- results

-- One result (OK, ERR or a result set). Returns res, more; or nil, err, errno,
-- sqlstate for an ERR packet.
local function read_result(self, so, st, binary)
	local packet = read_packet(so, st)
	local first = byte(packet)
	if first == 0x00 then
		local res = parse_ok(packet)
		return res, res.server_status & SERVER_MORE_RESULTS_EXISTS ~= 0
	elseif first == 0xff then
		local errno, msg, sqlstate = parse_err(packet)
		return nil, msg, errno, sqlstate
	elseif first == 0xfb or is_eof(packet) then
		bad("unexpected packet 0x%02x where a result was expected", first)
	end
	local ncols = lenenc(packet, 1)
	if ncols == nil or ncols == 0 then
		bad "bad column count"
	end
	local cols = {}
	for i = 1, ncols do
		packet = read_packet(so, st)
		if byte(packet) == 0xff then
			local errno, msg, sqlstate = parse_err(packet)
			return nil, msg, errno, sqlstate
		end
		cols[i] = parse_field(packet)
	end
	packet = read_packet(so, st)
	if not is_eof(packet) then
		bad "missing EOF after the column definitions"
	end
	local compact = self.compact
	local parse_row = binary and parse_binary_row or parse_text_row
	local rows = {}
	local n = 0
	while true do
		packet = read_packet(so, st)
		local b = byte(packet)
		if b == 0xfe and #packet < 9 then
			return rows, eof_status(packet) & SERVER_MORE_RESULTS_EXISTS ~= 0
		elseif b == 0xff then
			local errno, msg, sqlstate = parse_err(packet)
			return nil, msg, errno, sqlstate
		end
		n = n + 1
		rows[n] = parse_row(packet, cols, compact)
	end
end

-- Runs `reader(so)`; a Lua error from parsing becomes "mysql: ..." (the channel
-- then closes the connection); socket errors pass through.
local function guarded(reader)
	return function(so)
		local ok, a, b = pcall(reader, so)
		if ok then
			return a, b
		end
		if a == socketchannel.error or (type(a) == "string" and a:find("^mysql: ")) then
			error(a, 0)
		end
		error("mysql: malformed reply (" .. tostring(a) .. ")", 0)
	end
end

local function result_reader(self, st, binary, multikey)
	return guarded(function(so)
		local res, more, errno, sqlstate = read_result(self, so, st, binary)
		if res == nil then
			return true, { badresult = true, err = more, errno = errno, sqlstate = sqlstate }
		end
		if not more then
			return true, res
		end
		local all = { res }
		all[multikey] = true
		if binary then
			all.multiresultset = true -- upstream spells execute's key "mulitresultset"
		end
		while more do
			res, more, errno, sqlstate = read_result(self, so, st, binary)
			if res == nil then
				all.badresult = true
				all.err, all.errno, all.sqlstate = more, errno, sqlstate
				return true, all
			end
			all[#all + 1] = res
		end
		return true, all
	end)
end

local function command(self, payload, reader_for)
	local packets, seq = compose(payload)
	local st = { seq = seq, limit = self._reply_limit }
	return self.sockchannel:request(packets, reader_for(self, st))
end

local function query_reader(self, st)
	return result_reader(self, st, false, "multiresultset")
end

local function execute_reader(self, st)
	return result_reader(self, st, true, "mulitresultset")
end

---------------------------------------------------------------- login

local function auth_token(plugin, password, scramble)
	if plugin == "mysql_native_password" then
		return aux.native_token(password, scramble)
	elseif plugin == "caching_sha2_password" then
		return aux.sha2_token(password, scramble)
	end
	error(format("mysql: unsupported authentication plugin %q", tostring(plugin)), 0)
end

local function raw_reader(st)
	return guarded(function(so)
		local packet = read_packet(so, st)
		if byte(packet) == 0xff then
			local errno, msg, sqlstate = parse_err(packet)
			return false, format("errno:%d, msg:%s,sqlstate:%s", errno, msg, tostring(sqlstate))
		end
		return true, packet
	end)
end

local function parse_handshake(self, packet)
	local proto = byte(packet)
	if proto ~= 10 then
		bad("unsupported handshake protocol %s", tostring(proto))
	end
	self.protocol_ver = proto
	local server_ver, pos = sunpack("z", packet, 2)
	self._server_ver = server_ver
	local thread_id, part1, caps_lo, lang, status, caps_hi, data_len
	thread_id, part1, pos = sunpack("<I4c8", packet, pos)
	caps_lo, lang, status, caps_hi, data_len, pos = sunpack("<xI2BI2I2B", packet, pos)
	self._thread_id = thread_id
	self._server_lang = lang
	self._server_status = status
	local caps = caps_lo | (caps_hi << 16)
	self._server_capabilities = caps
	pos = pos + 10 -- reserved
	local part2 = ""
	if caps & CLIENT_SECURE_CONNECTION ~= 0 then
		local n = math.max(13, data_len - 8)
		part2 = sub(packet, pos, pos + n - 1)
		pos = pos + n
		if #part2 < 12 then
			bad "truncated handshake"
		end
		part2 = sub(part2, 1, 12)
	end
	local plugin = "mysql_native_password"
	if caps & CLIENT_PLUGIN_AUTH ~= 0 and pos <= #packet then
		plugin = sunpack("z", packet .. "\0", pos)
	end
	return part1 .. part2, plugin, caps
end

local function login(self, user, password, charset, database, on_connect, server_key)
	return function(ch)
		local st = { seq = 0, limit = self._reply_limit }
		local greeting = ch:response(guarded(function(so)
			local packet = read_packet(so, st)
			if byte(packet) == 0xff then -- e.g. too many connections, host blocked
				local errno, msg = parse_err(packet)
				return false, format("errno:%d, msg:%s", errno, msg)
			end
			return true, packet
		end))
		local okh, scramble, plugin, caps = pcall(parse_handshake, self, greeting)
		if not okh then
			local msg = tostring(scramble)
			bad("bad handshake (%s)", msg:match "^mysql: (.*)" or msg)
		end
		local flags = CLIENT_FLAGS
		if caps & CLIENT_PLUGIN_AUTH == 0 then
			flags = flags & ~CLIENT_PLUGIN_AUTH
		end
		local token = auth_token(plugin, password, scramble)
		local reply = spack("<I4I4Bc23zs1z", flags, self._max_packet_size, charset,
			string.rep("\0", 23), user, token, database)
		if flags & CLIENT_PLUGIN_AUTH ~= 0 then
			reply = reply .. plugin .. "\0"
		end
		local packets
		packets, st.seq = compose(reply, st.seq)
		local packet = ch:request(packets, raw_reader(st))
		while true do
			local first = byte(packet)
			if first == 0x00 then
				break
			elseif first == 0xfe then -- auth switch request
				if #packet == 1 then
					bad "server asks for the old pre-4.1 password authentication (not supported)"
				end
				local data
				plugin, data = sunpack("z", packet, 2), nil
				data = sub(packet, #plugin + 3)
				if byte(data, -1) == 0 then
					data = sub(data, 1, -2)
				end
				scramble = data
				packets, st.seq = compose(auth_token(plugin, password, scramble), st.seq)
				packet = ch:request(packets, raw_reader(st))
			elseif first == 0x01 and plugin == "caching_sha2_password" then
				local status = byte(packet, 2)
				if status == 3 then -- fast auth succeeded; the OK follows
					packet = ch:response(raw_reader(st))
				elseif status == 4 then
					-- full authentication on a plain link: the password, XORed with
					-- the scramble, RSA-encrypted with the server's public key
					local pem = server_key
					if not pem then
						packets, st.seq = compose("\2", st.seq) -- request the key
						local more = ch:request(packets, raw_reader(st))
						if byte(more) ~= 0x01 then
							bad "no public key from the server for caching_sha2_password"
						end
						pem = sub(more, 2)
					end
					local secret = password .. "\0"
					local mixed = {}
					for i = 1, #secret do
						local k = byte(scramble, (i - 1) % #scramble + 1)
						mixed[i] = char(byte(secret, i) ~ k)
					end
					local ok, cipher = pcall(aux.rsa_encrypt, pem, concat(mixed))
					if not ok then
						bad("caching_sha2_password: %s", tostring(cipher))
					end
					packets, st.seq = compose(cipher, st.seq)
					packet = ch:request(packets, raw_reader(st))
				else
					bad("unexpected caching_sha2_password status %s", tostring(status))
				end
			else
				bad("unexpected packet 0x%02x during authentication", first or 0)
			end
		end
		if on_connect then
			on_connect(self)
		end
	end
end

---------------------------------------------------------------- API

function mysql.connect(opts)
	local self = setmetatable({}, mt)
	self._max_packet_size = opts.max_packet_size or 1024 * 1024
	self._reply_limit = opts.max_packet_size or DEFAULT_REPLY_LIMIT
	self.compact = opts.compact_arrays
	local charset = CHARSET[opts.charset or "_default"]
	if charset == nil then
		error("mysql: unknown charset " .. tostring(opts.charset))
	end
	local ch = socketchannel.channel {
		host = opts.host,
		port = opts.port or 3306,
		auth = login(self, opts.user or "", opts.password or "", charset, opts.database or "",
			opts.on_connect, opts.server_public_key),
		overload = opts.overload,
	}
	self.sockchannel = ch
	ch:connect(true)
	return self
end

function mysql.disconnect(self)
	self.sockchannel:close()
	setmetatable(self, nil)
end

function mysql.query(self, sql)
	return command(self, char(COM_QUERY) .. sql, query_reader)
end

function mysql.ping(self)
	return command(self, char(COM_PING), query_reader)
end

function mysql.server_ver(self)
	return self._server_ver
end

function mysql.set_compact_arrays(self, value)
	self.compact = value
end

local function prepare_reader(self, st)
	return guarded(function(so)
		local packet = read_packet(so, st)
		local first = byte(packet)
		if first == 0xff then
			local errno, msg, sqlstate = parse_err(packet)
			return true, { badresult = true, errno = errno, err = msg, sqlstate = sqlstate }
		elseif first ~= 0x00 then
			bad("bad prepare reply 0x%02x", first)
		end
		local resp = { params = {}, fields = {} }
		resp.prepare_id, resp.field_count, resp.param_count, resp.warning_count =
			sunpack("<I4I2I2xI2", packet, 2)
		for _, part in ipairs { { resp.param_count, resp.params }, { resp.field_count, resp.fields } } do
			if part[1] > 0 then
				for i = 1, part[1] do
					part[2][i] = parse_field(read_packet(so, st))
				end
				if not is_eof(read_packet(so, st)) then
					bad "missing EOF after the statement's definitions"
				end
			end
		end
		return true, resp
	end)
end

function mysql.prepare(self, sql)
	return command(self, char(COM_STMT_PREPARE) .. sql, prepare_reader)
end

-- Parameter type (2 bytes: type, unsigned flag) and value for a Lua value.
local function bind(v)
	local t = type(v)
	if t == "number" then
		local i = tointeger(v)
		if i then
			return "\x08\0", spack("<i8", i)
		end
		return "\x05\0", spack("<d", v)
	elseif t == "string" then
		return "\x0f\0", lenenc_bytes(#v) .. v
	elseif t == "boolean" then
		return "\x01\0", v and "\1" or "\0"
	elseif t == "nil" then
		return "\x06\0", ""
	end
	error("invalid parameter type " .. t, 3)
end

function mysql.execute(self, stmt, ...)
	local n = select("#", ...)
	if n ~= stmt.param_count then
		error("require stmt.param_count " .. tostring(stmt.param_count) .. " get arg_num " .. n, 2)
	end
	local parts = { spack("<BI4BI4", COM_STMT_EXECUTE, stmt.prepare_id, 0, 1) }
	if n > 0 then
		local nulls = {}
		for i = 1, (n + 7) // 8 do
			nulls[i] = 0
		end
		local types, values = {}, {}
		for i = 1, n do
			local v = select(i, ...)
			if v == nil then
				local k = (i - 1) // 8 + 1
				nulls[k] = nulls[k] | (1 << ((i - 1) % 8))
			end
			types[i], values[i] = bind(v)
		end
		parts[2] = char(table.unpack(nulls))
		parts[3] = "\1" -- new params bound
		parts[4] = concat(types)
		parts[5] = concat(values)
	end
	return command(self, concat(parts), execute_reader)
end

function mysql.stmt_reset(self, stmt)
	return command(self, spack("<BI4", COM_STMT_RESET, stmt.prepare_id), query_reader)
end

function mysql.stmt_close(self, stmt)
	local packets = compose(spack("<BI4", COM_STMT_CLOSE, stmt.prepare_id))
	return self.sockchannel:request(packets)
end

function mysql.quote_sql_str(str)
	return aux.quote_sql_str(str)
end

return mysql
