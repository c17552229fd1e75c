-- skynet.db.redis: a Redis client over skynet.socketchannel (upstream's API).
--
--   local redis = require "skynet.db.redis"
--   local db = redis.connect { host = "127.0.0.1", port = 6379, db = 0, auth = "pw",
--                              username = "u" (optional, Redis 6 ACL) }
--   db:set("k", "v"); db:get "k"; db:hmset("h", "a", 1, "b", 2) or db:hmset { "h", "a", 1 }
--   db:pipeline({ { "set", "a", 1 }, { "get", "a" } } [, resp])
--   local w = redis.watch(conf); w:subscribe "ch"; w:psubscribe "p.*"; w:message()
--
-- Any method name is a command (upper-cased on the wire). Replies as upstream:
-- status -> string, integer -> number, bulk -> string or nil, array -> table (a nested
-- error element makes the whole call raise), error reply -> a Lua error with its text.
-- `exists` and `sismember` return booleans.
--
-- Links: requests go out in order on one socketchannel (order mode); the channel
-- reconnects on the next request after a drop, re-running AUTH and SELECT. A link
-- that drops during AUTH/SELECT or while a command waits raises an error in the
-- caller (never a hang). Hostile replies: an unknown type byte, a bad length or a
-- bulk longer than 512 MiB (Redis's own proto-max-bulk-len ceiling) raise an error
-- and close that connection; a reply line is bounded by the channel's buffer limit
-- (LINE_LIMIT) so garbage without CRLF cannot grow memory without bound.

local socketchannel = require "skynet.socketchannel"

local tostring = tostring
local tonumber = tonumber
local type = type
local select = select
local concat = table.concat
local upper = string.upper
local byte = string.byte
local sub = string.sub

local redis = {}
local command = {}
local meta = { __index = command }

local MAX_BULK = 512 * 1024 * 1024
-- Unread bytes allowed while no counted read is pending. A reader waiting for a line
-- holds less than one line plus one socket read (at most 1 MiB); an idle link is
-- paused by skynet.socket at 128 KiB. So only garbage without CRLF gets near this.
local LINE_LIMIT = 8 * 1024 * 1024

---------------------------------------------------------------- replies

local read_reply

local function bad_reply(what, line)
	error(string.format("redis: bad reply (%s): %q", what, sub(line, 1, 64)), 0)
end

local function reply_length(line)
	local n = tonumber(sub(line, 2))
	if n == nil or n ~= n // 1 then
		bad_reply("length", line)
	end
	return n
end

local reply_type = {
	[43] = function(_, line) -- '+' status
		return true, sub(line, 2)
	end,
	[45] = function(_, line) -- '-' error
		return false, sub(line, 2)
	end,
	[58] = function(_, line) -- ':' integer
		local n = tonumber(sub(line, 2))
		if n == nil then
			bad_reply("integer", line)
		end
		return true, n
	end,
	[36] = function(so, line) -- '$' bulk string
		local n = reply_length(line)
		if n < 0 then
			return true, nil
		end
		if n > MAX_BULK then
			bad_reply("bulk too long", line)
		end
		local s = so:read(n + 2)
		if sub(s, -2) ~= "\r\n" then
			bad_reply("bulk not ended by CRLF", line)
		end
		return true, sub(s, 1, n)
	end,
	[42] = function(so, line) -- '*' array
		local n = reply_length(line)
		if n < 0 then
			return true, nil
		end
		local t = {}
		local ok = true
		for i = 1, n do
			local good, v = read_reply(so)
			if not good then
				ok = false
			end
			t[i] = v
		end
		return ok, t
	end,
}

function read_reply(so)
	local line = so:readline "\r\n"
	local f = reply_type[byte(line)]
	if f == nil then
		bad_reply("type", line)
	end
	return f(so, line)
end

local function read_boolean(so)
	local ok, v = read_reply(so)
	return ok, v ~= 0
end

---------------------------------------------------------------- requests

-- "*<n>\r\n" then "$<len>\r\n<arg>\r\n" per argument: built as a list of pieces
-- (socket.write takes a table), the per-size headers cached.
local function cache(make)
	return setmetatable({}, {
		__mode = "kv",
		__index = function(t, k)
			local v = make(k)
			t[k] = v
			return v
		end,
	})
end

local arg_head = cache(function(n)
	return "$" .. n .. "\r\n"
end)
local count_head = cache(function(n)
	return "*" .. n .. "\r\n"
end)
local name_piece = cache(function(name)
	return "$" .. #name .. "\r\n" .. name .. "\r\n"
end)

local function add_arg(out, v)
	if v == nil then
		out[#out + 1] = "$-1\r\n"
	else
		v = tostring(v)
		out[#out + 1] = arg_head[#v]
		out[#out + 1] = v
		out[#out + 1] = "\r\n"
	end
end

-- Pieces for NAME followed by the arguments in `args[1..n]`.
local function compose(out, name, args, n)
	out[#out + 1] = count_head[n + 1]
	out[#out + 1] = name_piece[name]
	for i = 1, n do
		add_arg(out, args[i])
	end
	return out
end

local no_arg = cache(function(name)
	return "*1\r\n" .. name_piece[name]
end)

-- db:cmd(), db:cmd { a, b }, db:cmd(a, b, ...)
local function message(name, v, ...)
	if v == nil and select("#", ...) == 0 then
		return no_arg[name]
	end
	if type(v) == "table" and select("#", ...) == 0 then
		return compose({}, name, v, v.n or #v)
	end
	local args = table.pack(v, ...)
	return compose({}, name, args, args.n)
end

local function login(conf)
	local auth, db = conf.auth, conf.db
	if auth == nil and db == nil then
		return nil
	end
	return function(ch)
		if auth ~= nil then
			if conf.username then
				ch:request(message("AUTH", conf.username, auth), read_reply)
			else
				ch:request(message("AUTH", auth), read_reply)
			end
		end
		if db ~= nil then
			ch:request(message("SELECT", db), read_reply)
		end
	end
end

function redis.connect(conf)
	local ch = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		auth = login(conf),
		nodelay = true,
		limit = LINE_LIMIT,
	}
	ch:connect(true)
	return setmetatable({ ch }, meta)
end

function command:disconnect()
	self[1]:close()
	setmetatable(self, nil)
end

setmetatable(command, {
	__index = function(t, k)
		local name = upper(k)
		local f = function(self, ...)
			return self[1]:request(message(name, ...), read_reply)
		end
		t[k] = f
		return f
	end,
})

function command:exists(key)
	return self[1]:request(message("EXISTS", key), read_boolean)
end

function command:sismember(key, value)
	return self[1]:request(message("SISMEMBER", key, value), read_boolean)
end

-- ops: { { "set", "a", 1 }, { "get", "a" }, ... }. With `resp`, every reply is
-- appended to it as { ok = bool, out = value } and resp is returned; otherwise the
-- last reply is the result (raising if it is an error).
function command:pipeline(ops, resp)
	assert(ops and #ops > 0, "pipeline is null")
	local out = {}
	for _, op in ipairs(ops) do
		compose(out, upper(op[1]), { select(2, table.unpack(op)) }, #op - 1)
	end
	local n = #ops
	if resp then
		return self[1]:request(out, function(so)
			for _ = 1, n do
				local ok, v = read_reply(so)
				resp[#resp + 1] = { ok = ok, out = v }
			end
			return true, resp
		end)
	end
	return self[1]:request(out, function(so)
		local ok, v
		for _ = 1, n do
			ok, v = read_reply(so)
		end
		return ok, v
	end)
end

---------------------------------------------------------------- pub/sub

local watch = {}
local watch_meta = {
	__index = watch,
	__gc = function(self)
		self.__sock:close()
	end,
}

-- After a reconnect the login re-subscribes to everything the server had
-- confirmed (the confirmations are tracked by message()).
local function watch_login(conf, obj)
	local auth = login(conf)
	return function(ch)
		if auth then
			auth(ch)
		end
		for k in pairs(obj.__psubscribe) do
			ch:request(message("PSUBSCRIBE", k))
		end
		for k in pairs(obj.__subscribe) do
			ch:request(message("SUBSCRIBE", k))
		end
	end
end

function redis.watch(conf)
	local obj = { __subscribe = {}, __psubscribe = {} }
	local ch = socketchannel.channel {
		host = conf.host,
		port = conf.port or 6379,
		auth = watch_login(conf, obj),
		nodelay = true,
		limit = LINE_LIMIT,
	}
	obj.__sock = ch
	ch:connect(true)
	return setmetatable(obj, watch_meta)
end

function watch:disconnect()
	self.__sock:close()
	setmetatable(self, nil)
end

for _, name in ipairs { "subscribe", "psubscribe", "unsubscribe", "punsubscribe" } do
	local NAME = upper(name)
	watch[name] = function(self, ...)
		local ch = self.__sock
		for i = 1, select("#", ...) do
			ch:request(message(NAME, (select(i, ...))))
		end
	end
end

-- Next published message: data, channel (subscribe) or data, channel, pattern
-- (psubscribe). Subscription confirmations are consumed here. A dropped link does
-- not end the wait: the channel reconnects (with backoff) and re-subscribes, and
-- the wait goes on (messages published meanwhile are lost, as Redis pub/sub is).
-- Other errors (a bad reply, a closed watch) raise.
function watch:message()
	local ch = self.__sock
	while true do
		local ok, r = pcall(ch.response, ch, read_reply)
		if not ok then
			if r ~= socketchannel.error then
				error(r, 0)
			end
			r = nil
		end
		if r ~= nil and type(r) ~= "table" then
			error("redis: unexpected reply in watch mode: " .. tostring(r))
		end
		local kind, a, b, c
		if r then
			kind, a, b, c = r[1], r[2], r[3], r[4]
		end
		if kind == "message" then
			return b, a
		elseif kind == "pmessage" then
			return c, b, a
		elseif kind == "subscribe" then
			self.__subscribe[a] = true
		elseif kind == "psubscribe" then
			self.__psubscribe[a] = true
		elseif kind == "unsubscribe" then
			self.__subscribe[a] = nil
		elseif kind == "punsubscribe" then
			self.__psubscribe[a] = nil
		end
	end
end

return redis
