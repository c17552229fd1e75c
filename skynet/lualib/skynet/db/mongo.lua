-- skynet.db.mongo: a MongoDB client (OP_MSG, MongoDB >= 3.6) over
-- skynet.socketchannel in session mode, with upstream's API:
--
--   local mongo = require "skynet.db.mongo"
--   local c = mongo.client { host, port = 27017, username, password,
--                            authmod = "scram_sha1", authdb = "admin" }
--           -- or mongo.client { rs = { { host, port, username, ... }, ... } }
--   local coll = c.mydb.mycoll          -- or c:getDB "mydb":getCollection "mycoll"
--   coll:insert(doc) / coll:safe_insert(doc) -> ok, err, reply
--   coll:update(q, u, upsert, multi) / safe_update; delete(q, single) / safe_delete
--   coll:findOne(q, projection); coll:find(q, projection):sort{a=1}:skip(n):limit(n)
--       with cursor:hasNext() / next() / count() / close()
--   coll:createIndex{ {a=1}, unique=true } / createIndexes(...) / drop() / dropIndex
--   coll:findAndModify{...}, coll:aggregate(pipeline, options)
--   db:runCommand(name, value, k, v, ...), c:runCommand(...) (on admin)
--
-- Every request carries a fresh 31-bit request id; replies are matched to waiters
-- by their responseTo (socketchannel session mode), so concurrent callers share one
-- connection. Writes without "safe_" go out with moreToCome and writeConcern {w=0}
-- (no reply), as upstream.
--
-- Login (on every (re)connection): SCRAM-SHA-1 (authmod "scram_sha1", the default)
-- or MONGODB-CR ("mongodb_cr"), then "ismaster": with a replica set the client
-- follows the primary it names.
--
-- Hostile replies: a length outside 16 bytes .. 48 MB, a non-OP_MSG reply, a
-- truncated section or a document that does not decode raise "mongo: ..." for the
-- waiting callers and close that connection (the next call reconnects).

local bson = require "bson"
local socketchannel = require "skynet.socketchannel"
local skynet = require "skynet"
local driver = require "skynet.mongo.driver"
local md5 = require "md5"
local crypt = require "skynet.crypt"

local rawget = rawget
local assert = assert
local error = error
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local insert = table.insert
local unpack = table.unpack
local format = string.format

local bson_encode = bson.encode
local bson_encode_order = bson.encode_order
local bson_decode = bson.decode
local bson_int64 = bson.int64
local empty_bson = bson_encode {}

local MAX_MESSAGE = 48000000 -- MongoDB's maxMessageSizeBytes

local mongo = {}
mongo.null = assert(bson.null)
mongo.maxkey = assert(bson.maxkey)
mongo.minkey = assert(bson.minkey)
mongo.type = assert(bson.type)

local mongo_client = {}
local mongo_db = {}
local mongo_collection = {}
local mongo_cursor = {}
local aggregate_cursor = {}

local client_meta = {
	__index = function(self, key)
		return rawget(mongo_client, key) or self:getDB(key)
	end,
	__tostring = function(self)
		return "[mongo client : " .. self.host .. (self.port and (":" .. self.port) or "") .. "]"
	end,
}

local db_meta = {
	__index = function(self, key)
		return rawget(mongo_db, key) or self:getCollection(key)
	end,
	__tostring = function(self)
		return "[mongo db : " .. self.name .. "]"
	end,
}

local collection_meta = {
	__index = function(self, key)
		return rawget(mongo_collection, key) or self:getCollection(key)
	end,
	__tostring = function(self)
		return "[mongo collection : " .. self.full_name .. "]"
	end,
}

local cursor_meta = { __index = mongo_cursor }
local aggregate_cursor_meta = { __index = aggregate_cursor }

---------------------------------------------------------------- wire

-- Session-mode response: responseTo, ok, decoded reply document. Decoding here (not
-- in the caller) keeps the reply bytes alive for the duration and makes a bad
-- document a connection error.
local function read_reply(so)
	local n = driver.length(so:read(4))
	if n < 16 or n > MAX_MESSAGE then
		error(format("mongo: bad reply length %d", n + 4), 0)
	end
	local data = so:read(n)
	local ok, whole, id, doc = pcall(driver.reply, data)
	if not ok then
		error("mongo: " .. tostring(whole), 0)
	end
	if not whole then
		error("mongo: truncated reply", 0)
	end
	local decoded
	ok, decoded = pcall(bson_decode, doc)
	if not ok then
		error("mongo: bad reply document (" .. tostring(decoded) .. ")", 0)
	end
	return id, true, decoded
end

local function parse_addr(addr)
	local host, port = addr:match "([^:]+):(.+)"
	return host, tonumber(port)
end

-- ok, err, reply of a write command's reply.
local function werror(r)
	local ok = r.ok == 1 and not r.writeErrors and not r.writeConcernError and not r.errmsg
	local err
	if not ok then
		if r.writeErrors then
			err = r.writeErrors[1].errmsg
		elseif r.writeConcernError then
			err = r.writeConcernError.errmsg
		else
			err = r.errmsg
		end
	end
	return ok, err, r
end

---------------------------------------------------------------- auth

local auth_method = {}

function auth_method:auth_mongodb_cr(user, password)
	local pass = md5.sumhexa(format("%s:mongo:%s", user, password))
	local r = self:runCommand "getnonce"
	if r.ok ~= 1 then
		return false
	end
	local key = md5.sumhexa(format("%s%s%s", r.nonce, user, pass))
	r = self:runCommand("authenticate", 1, "user", user, "nonce", r.nonce, "key", key)
	return r.ok == 1
end

-- PBKDF2-HMAC-SHA1 with one output block (the 20 bytes SCRAM-SHA-1 needs).
local function pbkdf2_sha1(password, salt, iterations)
	local u = crypt.hmac_sha1(password, salt .. "\0\0\0\1")
	local out = u
	for _ = 2, iterations do
		u = crypt.hmac_sha1(password, u)
		out = crypt.xor_str(out, u)
	end
	return out
end

local function scram_fields(s)
	local t = {}
	for k, v in s:gmatch "(%w+)=([^,]*)" do
		t[k] = v
	end
	return t
end

-- RFC 5802 SCRAM with MongoDB's SHA-1 password digest (md5 of "user:mongo:pass").
function auth_method:auth_scram_sha1(username, password)
	local user = username:gsub("=", "=3D"):gsub(",", "=2C")
	local nonce = crypt.base64encode(crypt.randomkey())
	local first_bare = "n=" .. user .. ",r=" .. nonce
	local r = self:runCommand("saslStart", 1, "autoAuthorize", 1, "mechanism", "SCRAM-SHA-1",
		"payload", crypt.base64encode("n,," .. first_bare))
	if r.ok ~= 1 then
		return false
	end
	local conversation = r.conversationId
	local server_first = crypt.base64decode(r.payload)
	local f = scram_fields(server_first)
	local iterations = tonumber(f.i)
	if not (f.r and f.s and iterations) or f.r:sub(1, #nonce) ~= nonce then
		skynet.error "Server returned an invalid nonce."
		return false
	end
	local without_proof = "c=biws,r=" .. f.r
	local salted = pbkdf2_sha1(md5.sumhexa(username .. ":mongo:" .. password),
		crypt.base64decode(f.s), iterations)
	local client_key = crypt.hmac_sha1(salted, "Client Key")
	local auth_message = first_bare .. "," .. server_first .. "," .. without_proof
	local signature = crypt.hmac_sha1(crypt.sha1(client_key), auth_message)
	local proof = crypt.base64encode(crypt.xor_str(client_key, signature))
	local server_signature = crypt.base64encode(crypt.hmac_sha1(crypt.hmac_sha1(salted, "Server Key"), auth_message))
	r = self:runCommand("saslContinue", 1, "conversationId", conversation, "payload",
		crypt.base64encode(without_proof .. ",p=" .. proof))
	if r.ok ~= 1 then
		return false
	end
	if scram_fields(crypt.base64decode(r.payload)).v ~= server_signature then
		skynet.error "Server returned an invalid signature."
		return false
	end
	if not r.done then
		r = self:runCommand("saslContinue", 1, "conversationId", conversation, "payload", "")
		if r.ok ~= 1 then
			return false
		end
		if not r.done then
			skynet.error "SASL conversation failed to complete."
			return false
		end
	end
	return true
end

local function login(client)
	local user = rawget(client, "username")
	local pass = rawget(client, "password")
	local authmod = "auth_" .. (rawget(client, "authmod") or "scram_sha1")
	local authdb = rawget(client, "authdb")
	return function()
		if user ~= nil and pass ~= nil then
			local f = auth_method[authmod]
			assert(f, "Invalid authmod")
			local target = authdb and mongo_client.getDB(client, authdb) or client
			assert(f(target, user, pass), "mongo: authentication failed for " .. tostring(user))
		end
		local r = client:runCommand "ismaster"
		if r.ok == 1 then
			if r.hosts then
				local backup = {}
				for _, v in ipairs(r.hosts) do
					local host, port = parse_addr(v)
					backup[#backup + 1] = { host = host, port = port }
				end
				client.__sock:changebackup(backup)
			end
			if r.ismaster then
				return
			elseif r.primary then
				local host, port = parse_addr(r.primary)
				client.host, client.port = host, port
				client.__sock:changehost(host, port)
			else
				error("No primary return : " .. tostring(r.me))
			end
		end
	end
end

---------------------------------------------------------------- client

function mongo.client(conf)
	local first = conf.rs and conf.rs[1] or conf
	local client = {
		host = first.host,
		port = first.port or 27017,
		username = first.username,
		password = first.password,
		authmod = first.authmod,
		authdb = first.authdb,
		__id = 0,
	}
	client.__sock = socketchannel.channel {
		host = client.host,
		port = client.port,
		response = read_reply,
		auth = login(client),
		backup = conf.rs,
		nodelay = true,
		overload = conf.overload,
	}
	setmetatable(client, client_meta)
	client.__sock:connect(true)
	return client
end

function mongo_client:getDB(name)
	local db = {
		connection = self,
		name = name,
		full_name = name,
		database = false,
		__cmd = name .. ".$cmd",
	}
	db.database = db
	return setmetatable(db, db_meta)
end

function mongo_client:disconnect()
	local so = self.__sock
	if so then
		self.__sock = false
		so:close()
	end
end

-- Request ids stay positive int32 (responseTo is an int32 on the wire).
function mongo_client:genId()
	local id = (self.__id + 1) & 0x7fffffff
	self.__id = id
	return id
end

function mongo_client:runCommand(...)
	if not rawget(self, "admin") then
		self.admin = self:getDB "admin"
	end
	return self.admin:runCommand(...)
end

function mongo_client:logout()
	return self:runCommand("logout").ok == 1
end

local function opt(list, key, value)
	if value ~= nil then
		list[#list + 1] = key
		list[#list + 1] = type(value) == "table" and bson_encode(value) or value
	end
end

local bulk_op = {
	insert = function(ns, doc)
		return bson_encode_order("insert", ns, "document", bson_encode(doc.insert))
	end,
	delete = function(ns, doc)
		local a = { "delete", ns, "filter", bson_encode(doc.filter), "multi", doc.multi or false }
		opt(a, "hint", doc.hint)
		opt(a, "collation", doc.collation)
		return bson_encode_order(unpack(a))
	end,
	update = function(ns, doc)
		local a = { "update", ns, "filter", bson_encode(doc.filter), "updateMods", bson_encode(doc.update),
			"multi", doc.multi or false, "upsert", doc.upsert or false }
		opt(a, "hint", doc.hint)
		opt(a, "constants", doc.constants)
		opt(a, "collation", doc.collation)
		return bson_encode_order(unpack(a))
	end,
}

-- MongoDB 8's bulkWrite: datas = { { op = "insert", collection = "db.coll", insert = doc }, ... }
function mongo_client:bulkWrite(datas, comment, ordered, verify, errorsOnly)
	local ops, ns, index = {}, {}, {}
	for i, v in ipairs(datas) do
		if not index[v.collection] then
			index[v.collection] = #ns
			ns[#ns + 1] = bson_encode { ns = v.collection }
		end
		ops[i] = assert(bulk_op[v.op], v.op)(index[v.collection], v)
	end
	local a = { "bulkWrite", 1, "ops", ops, "nsInfo", ns }
	opt(a, "ordered", ordered)
	opt(a, "bypassDocumentValidation", verify)
	opt(a, "comment", comment)
	opt(a, "errorsOnly", errorsOnly)
	local r = self:runCommand(unpack(a))
	local ok, err = werror(r)
	local failed
	if r.nErrors and r.nErrors ~= 0 and r.cursor then
		failed = {}
		err = err and err .. ";" or ""
		for i, v in ipairs(r.cursor.firstBatch) do
			if v.ok ~= 1 then
				failed[#failed + 1] = i
				err = err .. tostring(v.errmsg) .. ";"
			end
		end
	end
	return ok, err, r, failed
end

---------------------------------------------------------------- database

function mongo_db:auth(user, pass)
	local f = auth_method["auth_" .. (rawget(self.connection, "authmod") or "scram_sha1")]
	assert(f, "Invalid authmod")
	return f(self, user, pass)
end

local function command_doc(self, cmd, value, extra, ...)
	if value == nil then
		value = 1
	end
	if extra then
		return bson_encode_order(cmd, value, "$db", self.name, extra, { w = 0 }, ...)
	end
	return bson_encode_order(cmd, value, "$db", self.name, ...)
end

function mongo_db:runCommand(cmd, value, ...)
	local conn = self.connection
	local id = conn:genId()
	return conn.__sock:request(driver.op_msg(id, 0, command_doc(self, cmd, value, nil, ...)), id)
end

-- Fire and forget (moreToCome, writeConcern {w=0}): no reply is awaited.
function mongo_db:send_command(cmd, value, ...)
	local conn = self.connection
	local id = conn:genId()
	conn.__sock:request(driver.op_msg(id, 2, command_doc(self, cmd, value, "writeConcern", ...)))
	return { ok = 1 }
end

function mongo_db:getCollection(name)
	local coll = {
		connection = self.connection,
		name = name,
		full_name = self.full_name .. "." .. name,
		database = self.database,
	}
	self[name] = setmetatable(coll, collection_meta)
	return coll
end

---------------------------------------------------------------- collection

mongo_collection.getCollection = mongo_db.getCollection

local function with_ids(docs)
	local out = {}
	for i, d in ipairs(docs) do
		if d._id == nil then
			d._id = bson.objectid()
		end
		out[i] = bson_encode(d)
	end
	return out
end

function mongo_collection:insert(doc)
	if doc._id == nil then
		doc._id = bson.objectid()
	end
	self.database:send_command("insert", self.name, "documents", { bson_encode(doc) })
end

function mongo_collection:safe_insert(doc)
	return werror(self.database:runCommand("insert", self.name, "documents", { bson_encode(doc) }))
end

function mongo_collection:raw_safe_insert(doc)
	return werror(self.database:runCommand("insert", self.name, "documents", { doc }))
end

function mongo_collection:batch_insert(docs)
	self.database:send_command("insert", self.name, "documents", with_ids(docs))
end
mongo_collection.insert_many = mongo_collection.batch_insert

function mongo_collection:safe_batch_insert(docs)
	return werror(self.database:runCommand("insert", self.name, "documents", with_ids(docs)))
end
mongo_collection.safe_insert_many = mongo_collection.safe_batch_insert

local function update_doc(query, update, upsert, multi)
	return bson_encode { q = query, u = update, upsert = upsert, multi = multi }
end

function mongo_collection:update(query, update, upsert, multi)
	self.database:send_command("update", self.name, "updates", { update_doc(query, update, upsert, multi) })
end

function mongo_collection:safe_update(query, update, upsert, multi)
	return werror(self.database:runCommand("update", self.name, "updates",
		{ update_doc(query, update, upsert, multi) }))
end

local function update_docs(updates)
	local out = {}
	for i, u in ipairs(updates) do
		out[i] = update_doc(u.query, u.update, u.upsert, u.multi)
	end
	return out
end

function mongo_collection:batch_update(updates)
	self.database:send_command("update", self.name, "updates", update_docs(updates))
end

function mongo_collection:safe_batch_update(updates)
	return werror(self.database:runCommand("update", self.name, "updates", update_docs(updates)))
end

function mongo_collection:raw_safe_update(update)
	return werror(self.database:runCommand("update", self.name, "updates", { update }))
end

local function delete_doc(query, single)
	return bson_encode { q = query, limit = single and 1 or 0 }
end

function mongo_collection:delete(query, single)
	self.database:send_command("delete", self.name, "deletes", { delete_doc(query, single) })
end

function mongo_collection:safe_delete(query, single)
	return werror(self.database:runCommand("delete", self.name, "deletes", { delete_doc(query, single) }))
end

function mongo_collection:safe_batch_delete(deletes, single)
	local out = {}
	for i, q in ipairs(deletes) do
		out[i] = delete_doc(q, single)
	end
	return werror(self.database:runCommand("delete", self.name, "deletes", out))
end

function mongo_collection:raw_safe_delete(delete)
	return werror(self.database:runCommand("delete", self.name, "deletes", { delete }))
end

function mongo_collection:findOne(query, projection)
	local r = self.database:runCommand("find", self.name, "filter", query and bson_encode(query) or empty_bson,
		"limit", 1, "projection", projection and bson_encode(projection) or empty_bson)
	if r.ok ~= 1 then
		error(r.errmsg or "Reply from mongod error")
	end
	return r.cursor.firstBatch[1]
end

function mongo_collection:find(query, projection)
	return setmetatable({
		__collection = self,
		__query = query and bson_encode(query) or empty_bson,
		__projection = projection and bson_encode(projection) or empty_bson,
		__ptr = nil,
		__data = nil,
		__cursor = nil,
		__document = {},
		__sort = empty_bson,
	}, cursor_meta)
end

-- { {a=1}, {b=-1} } -> "a", 1, "b", -1 (one key per table, in order)
local function key_list(...)
	local list = {}
	for i = 1, select("#", ...) do
		local k, v = next((select(i, ...)))
		list[#list + 1] = k
		list[#list + 1] = v
	end
	return list
end

local function index_model(option)
	local doc = {}
	for k, v in pairs(option) do
		if type(k) == "string" then
			doc[k] = v
		end
	end
	local keys, name = {}, nil
	for _, kv in ipairs(option) do
		local k, v
		if type(kv) == "string" then
			k, v = kv, 1
		else
			k, v = next(kv)
		end
		keys[#keys + 1] = k
		keys[#keys + 1] = v
		name = (name and name .. "_" or "") .. k .. "_" .. v
	end
	assert(name, "Need keys")
	doc.name = doc.name or name
	doc.key = bson_encode_order(unpack(keys))
	return doc
end

-- createIndex { {k1=1}, {k2=-1}, unique = true } | createIndex { "k1", "k2" }
-- | createIndex({ k = 1 }, { unique = true }) (one key, the old form)
function mongo_collection:createIndex(arg1, arg2)
	if arg2 then
		local doc = {}
		for k, v in pairs(arg2) do
			doc[k] = v
		end
		local k, v = next(arg1)
		assert(next(arg1, k) == nil, "Use new api for multi-keys")
		doc.name = doc.name or (k .. "_" .. v)
		doc.key = arg1
		return self.database:runCommand("createIndexes", self.name, "indexes", { doc })
	end
	return self.database:runCommand("createIndexes", self.name, "indexes", { index_model(arg1) })
end
mongo_collection.ensureIndex = mongo_collection.createIndex

function mongo_collection:createIndexes(...)
	local idx = { ... }
	for i, v in ipairs(idx) do
		idx[i] = index_model(v)
	end
	return self.database:runCommand("createIndexes", self.name, "indexes", idx)
end

function mongo_collection:drop()
	return self.database:runCommand("drop", self.name)
end

function mongo_collection:dropIndex(name)
	return self.database:runCommand("dropIndexes", self.name, "index", name)
end

function mongo_collection:findAndModify(doc)
	assert(doc.query)
	assert(doc.update or doc.remove)
	local cmd = { "findAndModify", self.name }
	for k, v in pairs(doc) do
		cmd[#cmd + 1] = k
		cmd[#cmd + 1] = v
	end
	return self.database:runCommand(unpack(cmd))
end

function mongo_collection:aggregate(pipeline, options)
	assert(pipeline)
	local options_cmd
	if options then
		options_cmd = {}
		for k, v in pairs(options) do
			options_cmd[#options_cmd + 1] = k
			options_cmd[#options_cmd + 1] = v
		end
	end
	local n = #pipeline
	return setmetatable({
		__collection = self,
		__pipeline = table.move(pipeline, 1, n, 1, {}),
		__pipeline_len = n,
		__options = options_cmd,
		__document = {},
		__skip = 0,
		__limit = 0,
	}, aggregate_cursor_meta)
end

---------------------------------------------------------------- cursors

-- cursor:sort { key = 1 } or cursor:sort({ key1 = 1 }, { key2 = -1 })
function mongo_cursor:sort(key, key2, ...)
	if key2 then
		key = bson_encode_order(unpack(key_list(key, key2, ...)))
	end
	self.__sort = key
	return self
end

for _, name in ipairs { "skip", "limit", "hint", "maxTimeMS", "batchSize" } do
	local field = "__" .. name
	mongo_cursor[name] = function(self, v)
		self[field] = v
		return self
	end
end

-- name, value pairs of the cursor options that are set, among `names`.
local function options(self, names, out)
	out = out or {}
	for _, name in ipairs(names) do
		local v = self["__" .. name]
		if v ~= nil then
			out[#out + 1] = name
			out[#out + 1] = v
		end
	end
	return out
end

function mongo_cursor:count(with_limit_and_skip)
	local names = with_limit_and_skip and { "skip", "limit", "hint", "maxTimeMS" } or { "hint", "maxTimeMS" }
	local coll = self.__collection
	local r = coll.database:runCommand("count", coll.name, "query", self.__query, unpack(options(self, names)))
	assert(r.ok == 1, r.errmsg)
	return r.n
end

-- Takes the reply of find/aggregate/getMore into the cursor; false when exhausted.
local function take_batch(self, r)
	if r.ok ~= 1 then
		self.__document = nil
		self.__data = nil
		self.__cursor = nil
		error(r.errmsg or "Reply from mongod error")
	end
	local cursor = r.cursor
	self.__document = cursor.firstBatch or cursor.nextBatch
	self.__data = r
	self.__ptr = 1
	self.__cursor = cursor.id
	local limit = self.__limit
	if limit and limit > 0 and cursor.id > 0 then
		limit = limit - #self.__document
		if limit <= 0 then
			self:close() -- the limit is reached: let the server drop its cursor
		end
		self.__limit = limit
	end
	if cursor.id == 0 and #self.__document == 0 then
		return false
	end
	return true
end

local function get_more(self)
	local id = self.__cursor
	if not (id and id > 0) then
		self.__document = nil
		self.__data = nil
		return nil
	end
	local coll = self.__collection
	local bz = self.__batchSize
	if bz and bz > 0 then
		return coll.database:runCommand("getMore", bson_int64(id), "collection", coll.name, "batchSize", bz)
	end
	return coll.database:runCommand("getMore", bson_int64(id), "collection", coll.name)
end

function mongo_cursor:hasNext()
	if self.__ptr ~= nil then
		return true
	end
	if self.__document == nil then
		return false
	end
	local r
	if self.__data == nil then
		local coll = self.__collection
		local extra = options(self, { "skip", "limit", "hint", "maxTimeMS", "batchSize" })
		r = coll.database:runCommand("find", coll.name, "filter", self.__query, "sort", self.__sort,
			"projection", self.__projection, unpack(extra))
	else
		r = get_more(self)
		if r == nil then
			return false
		end
	end
	return take_batch(self, r)
end

function mongo_cursor:next()
	local ptr = self.__ptr
	if ptr == nil then
		error "Call hasNext first"
	end
	local doc = self.__document[ptr]
	ptr = ptr + 1
	if ptr > #self.__document then
		ptr = nil
	end
	self.__ptr = ptr
	return doc
end

function mongo_cursor:close()
	local id = self.__cursor
	if id and id > 0 then
		local coll = self.__collection
		coll.database:send_command("killCursors", coll.name, "cursors", { bson_int64(id) })
		self.__cursor = nil
	end
end

local function pipeline_of(self, with_limit_and_skip, is_count)
	local p = table.move(self.__pipeline, 1, self.__pipeline_len, 1, {})
	if self.__sort and not is_count then
		p[#p + 1] = { ["$sort"] = self.__sort }
	end
	if with_limit_and_skip then
		if self.__skip > 0 then
			p[#p + 1] = { ["$skip"] = self.__skip }
		end
		if self.__limit > 0 then
			p[#p + 1] = { ["$limit"] = self.__limit }
		end
	end
	if is_count then
		p[#p + 1] = { ["$count"] = "__count" }
	end
	return p
end

local function run_aggregate(self, pipeline)
	local coll = self.__collection
	if self.__options then
		return coll.database:runCommand("aggregate", coll.name, "pipeline", pipeline, unpack(self.__options))
	end
	return coll.database:runCommand("aggregate", coll.name, "pipeline", pipeline, "cursor", empty_bson)
end

function aggregate_cursor:count(with_limit_and_skip)
	local r = run_aggregate(self, pipeline_of(self, with_limit_and_skip, true))
	if r.ok ~= 1 then
		error(r.errmsg or "Reply from mongod error")
	end
	local first = r.cursor.firstBatch[1]
	return first and first.__count or 0
end

function aggregate_cursor:hasNext()
	if self.__ptr ~= nil then
		return true
	end
	if self.__document == nil then
		return false
	end
	local r
	if self.__data == nil then
		r = run_aggregate(self, pipeline_of(self, true))
	else
		r = get_more(self)
		if r == nil then
			return false
		end
	end
	return take_batch(self, r)
end

aggregate_cursor.sort = mongo_cursor.sort
aggregate_cursor.skip = mongo_cursor.skip
aggregate_cursor.limit = mongo_cursor.limit
aggregate_cursor.next = mongo_cursor.next
aggregate_cursor.close = mongo_cursor.close

-- Plug-in modules (e.g. upstream's skynet.db.mongo.transaction) get mongo_db.
local enabled = {}
function mongo.enable(name)
	if enabled[name] then
		return
	end
	enabled[name] = true
	require("skynet.db.mongo." .. name).init { mongo_db = mongo_db }
end

return mongo
