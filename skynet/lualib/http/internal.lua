-- http.internal: the HTTP/1.1 wire format shared by http.httpd, http.httpc and
-- http.websocket (upstream's module of the same name and function set).
--
-- A "read function" is `read(n)` -> exactly n bytes, `read()` -> whatever is
-- available (at least one byte); it raises (sockethelper.socket_error) when the
-- connection is gone. Everything here reads through such a function.
--
-- Invariants (hostile input):
--   * nothing is buffered without bound: the header block (request or status line,
--     fields, and a chunked body's trailer) is at most `M.HEADER_LIMIT` bytes unless
--     the caller passes another limit; a chunk-size line is at most 128 bytes; chunk
--     sizes are plain hex (at most 15 digits) checked against the body limit BEFORE
--     the chunk is read.
--   * bytes read past the end of one message (a pipelined request, the next response
--     on a kept-alive connection) are not lost: they are kept for the same read
--     function in a weak table and served first by the next read through `M.reader`.
--   * malformed input is an error (a string) or a nil result, never a silent partial
--     message.

local string = string
local table = table
local type = type
local tonumber = tonumber
local error = error
local pairs = pairs
local setmetatable = setmetatable

local M = {}

M.HEADER_LIMIT = 8192
local CHUNKLINE_LIMIT = 128

-- read function -> bytes read past the last message, served first next time
local leftover = setmetatable({}, { __mode = "k" })

function M.unread(readbytes, s)
	if s and s ~= "" then
		local old = leftover[readbytes]
		leftover[readbytes] = old and (s .. old) or s
	end
end

-- The pending bytes of `readbytes` (consumed).
function M.pending(readbytes)
	local s = leftover[readbytes]
	if s then
		leftover[readbytes] = nil
		return s
	end
	return ""
end

-- Read `sz` more bytes, or (sz nil) whatever is there.
local function more(readbytes, sz)
	local s = leftover[readbytes]
	if s then
		leftover[readbytes] = nil
		if sz == nil or sz == #s then
			return s
		elseif sz < #s then
			leftover[readbytes] = s:sub(sz + 1)
			return s:sub(1, sz)
		end
		return s .. readbytes(sz - #s)
	end
	return readbytes(sz)
end
M.read = more

-- Parse `size [; ext]` from the front of `body`; returns size, rest or nil, why.
local function chunksize(readbytes, body)
	while true do
		local f = body:find("\r\n", 1, true)
		if f then
			if f > CHUNKLINE_LIMIT then
				return nil, "chunk-size line too long"
			end
			local line = body:sub(1, f - 1)
			local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)[ \t]*$")
			if not hex or #hex > 15 then
				return nil, "invalid chunk size"
			end
			return tonumber(hex, 16), body:sub(f + 2)
		end
		if #body > CHUNKLINE_LIMIT then
			return nil, "chunk-size line too long"
		end
		body = body .. more(readbytes)
	end
end

local function readcrlf(readbytes, body)
	if #body < 2 then
		body = body .. more(readbytes, 2 - #body)
	end
	if body:sub(1, 2) ~= "\r\n" then
		return nil
	end
	return body:sub(3)
end

-- Read a header block (up to and including the empty line) whose first bytes are
-- `header`; the lines go into `lines`. Returns the bytes after the block, or nil when
-- the block exceeds `limit` (default M.HEADER_LIMIT).
function M.recvheader(readbytes, lines, header, limit)
	limit = limit or M.HEADER_LIMIT
	header = header or ""
	if header:sub(1, 2) == "\r\n" then
		return header:sub(3)
	end
	local e = header:find("\r\n\r\n", 1, true)
	while not e do
		if #header > limit then
			return nil
		end
		local bytes = more(readbytes)
		local from = #header - 2
		header = header .. bytes
		if header:sub(1, 2) == "\r\n" then
			return header:sub(3)
		end
		e = header:find("\r\n\r\n", from > 0 and from or 1, true)
	end
	if e + 3 > limit then
		return nil
	end
	local n = #lines
	for v in header:sub(1, e + 1):gmatch("(.-)\r\n") do
		n = n + 1
		lines[n] = v
	end
	return header:sub(e + 4)
end

-- Fields of `lines[from..]` into `header` (names lower-cased; a repeated name gives
-- a list). Returns header, or nil for a malformed line.
function M.parseheader(lines, from, header)
	local name
	for i = from, #lines do
		local line = lines[i]
		local c = line:byte(1)
		if c == 9 or c == 32 then -- obsolete line folding: continue the last field
			if name == nil then
				return nil
			end
			local v = header[name]
			if type(v) == "table" then
				v[#v] = v[#v] .. " " .. line:match("^%s*(.-)%s*$")
			else
				header[name] = v .. " " .. line:match("^%s*(.-)%s*$")
			end
		else
			local n, value = line:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
			if n == nil then
				return nil
			end
			name = n:lower()
			local old = header[name]
			if old == nil then
				header[name] = value
			elseif type(old) == "table" then
				old[#old + 1] = value
			else
				header[name] = { old, value }
			end
		end
	end
	return header
end

-- A field that must be single-valued; nil when absent, false when repeated
-- differently.
local function single(header, name)
	local v = header[name]
	if type(v) == "table" then
		for i = 2, #v do
			if v[i] ~= v[1] then
				return false
			end
		end
		return v[1]
	end
	return v
end
M.single = single

-- Content-Length as an integer: nil when absent, false when malformed.
function M.content_length(header)
	local v = single(header, "content-length")
	if v == nil then
		return nil
	end
	if not v or not v:match("^%d+$") or #v > 15 then
		return false
	end
	return tonumber(v)
end

-- Read a chunked body whose first bytes are `body`. Returns the body and the header
-- (the trailer's fields added), or nil, why.
function M.recvchunkedbody(readbytes, bodylimit, header, body, headerlimit)
	local parts = {}
	local size = 0
	while true do
		local sz
		sz, body = chunksize(readbytes, body)
		if not sz then
			return nil, body
		end
		if sz == 0 then
			break
		end
		size = size + sz
		if bodylimit and size > bodylimit then
			return nil, "body too large"
		end
		if #body >= sz then
			parts[#parts + 1] = body:sub(1, sz)
			body = body:sub(sz + 1)
		else
			parts[#parts + 1] = body
			parts[#parts + 1] = more(readbytes, sz - #body)
			body = ""
		end
		body = readcrlf(readbytes, body)
		if not body then
			return nil, "missing CRLF after chunk"
		end
	end
	local trailer = {}
	body = M.recvheader(readbytes, trailer, body, headerlimit)
	if not body then
		return nil, "trailer too large"
	end
	if not M.parseheader(trailer, 1, header) then
		return nil, "invalid trailer"
	end
	M.unread(readbytes, body)
	return table.concat(parts), header
end

-- Read an identity body of `length` bytes whose first bytes are `body`; the rest is
-- kept for the next message.
function M.recvlength(readbytes, body, length)
	if #body >= length then
		M.unread(readbytes, body:sub(length + 1))
		return body:sub(1, length)
	end
	return body .. more(readbytes, length - #body)
end

local function header_lines(header, host)
	local t = {}
	local has_host = false
	if header then
		for k, v in pairs(header) do
			if type(k) == "string" and k:lower() == "host" then
				has_host = true
			end
			if type(v) == "table" then
				for _, vv in ipairs(v) do
					t[#t + 1] = k .. ": " .. tostring(vv) .. "\r\n"
				end
			else
				t[#t + 1] = k .. ": " .. tostring(v) .. "\r\n"
			end
		end
	end
	if not has_host then
		t[#t + 1] = "host: " .. host .. "\r\n"
	end
	return t
end

-- Client side: send a request and read the status line and header. Returns code,
-- the bytes read after the header, the header table. Raises on failure.
function M.request(interface, method, host, url, recvheader, header, content, headerlimit)
	local read = interface.read
	local write = interface.write
	local t = header_lines(header, host)
	table.insert(t, 1, string.format("%s %s HTTP/1.1\r\n", method, url))
	local chunked = header and (header["transfer-encoding"] == "chunked")
	if content then
		if not chunked then
			t[#t + 1] = string.format("content-length: %d\r\n", #content)
		end
		t[#t + 1] = "\r\n"
		t[#t + 1] = content
	else
		t[#t + 1] = "content-length: 0\r\n\r\n"
	end
	write(table.concat(t))

	local tmpline = {}
	local body = M.recvheader(read, tmpline, "", headerlimit)
	if not body then
		error("Recv header failed")
	end
	local statusline = tmpline[1] or ""
	local code = statusline:match("^HTTP/%d%.%d%s+(%d%d%d)")
	code = tonumber(code)
	if not code then
		error("Invalid HTTP status line: " .. statusline:sub(1, 64))
	end
	local h = M.parseheader(tmpline, 2, recvheader or {})
	if not h then
		error("Invalid HTTP response header")
	end
	return code, body, h
end

local function transfer_mode(header)
	local mode = single(header, "transfer-encoding")
	if mode == nil then
		return "identity"
	end
	mode = mode and mode:lower()
	if mode ~= "identity" and mode ~= "chunked" then
		error("Unsupport transfer-encoding")
	end
	return mode
end

-- Client side: read the response body. `bodylimit` (optional) bounds it.
function M.response(interface, code, body, header, bodylimit)
	local mode = transfer_mode(header)
	if mode == "chunked" then
		local why
		body, why = M.recvchunkedbody(interface.read, bodylimit, header, body)
		if not body then
			error("Invalid response body: " .. tostring(why))
		end
		return body
	end
	local length = M.content_length(header)
	if length == false then
		error("Invalid content-length")
	end
	if length then
		if bodylimit and length > bodylimit then
			error("Response body too large")
		end
		return M.recvlength(interface.read, body, length)
	elseif code == 204 or code == 304 or code < 200 then
		return ""
	end
	-- no length: the body ends with the connection
	body = M.pending(interface.read) .. body
	local rest = interface.readall()
	if rest then
		body = body .. rest
	end
	if bodylimit and #body > bodylimit then
		error("Response body too large")
	end
	return body
end

---------------------------------------------------------------------------
-- streams (httpc.request_stream): read the body piece by piece

local stream = {}
stream.__index = stream

function stream:close()
	local f = self._onclose
	if f then
		self._onclose = nil
		f(self)
	end
end

function stream:padding()
	return self._reading(self), self
end

stream.__close = stream.close
stream.__call = stream.padding

local function finished(self)
	self._reading = stream.close
	self.connected = nil
end

local function broken(self)
	self.connected = false
	self:close()
end

local function stream_nobody(self)
	finished(self)
	return ""
end

local function stream_length(length)
	return function(self)
		local body = self._body
		self._body = nil
		if body == nil or body == "" then
			local ok, s = pcall(more, self._interface.read)
			if not ok then
				broken(self)
				return
			end
			body = s
		end
		if #body >= length then
			finished(self)
			return body:sub(1, length)
		end
		length = length - #body
		return body
	end
end

local function stream_all(self)
	local body = self._body
	self._body = nil
	if body and body ~= "" then
		return body
	end
	local ok, s = pcall(more, self._interface.read)
	if not ok or s == "" then
		self.connected = nil
		self:close()
		return
	end
	return s
end

local function stream_chunked(self)
	local read = self._interface.read
	local ok, sz, body = pcall(chunksize, read, self._body)
	if not ok or not sz then
		broken(self)
		return
	end
	if sz == 0 then
		local tmpline = {}
		ok, body = pcall(M.recvheader, read, tmpline, body)
		if not ok or not body then
			broken(self)
			return
		end
		M.parseheader(tmpline, 1, self.header)
		finished(self)
		return ""
	end
	local piece
	if #body >= sz then
		piece, body = body:sub(1, sz), body:sub(sz + 1)
	else
		ok, piece = pcall(more, read, sz - #body)
		if not ok then
			broken(self)
			return
		end
		piece, body = body .. piece, ""
	end
	ok, body = pcall(readcrlf, read, body)
	if not ok or not body then
		broken(self)
		return
	end
	self._body = body
	return piece
end

function M.response_stream(interface, code, body, header)
	local mode = transfer_mode(header)
	local reading
	if mode == "chunked" then
		reading = stream_chunked
	else
		local length = M.content_length(header)
		if length == false then
			error("Invalid content-length")
		end
		if length then
			reading = length == 0 and stream_nobody or stream_length(length)
		elseif code == 204 or code == 304 or code < 200 then
			reading = stream_nobody
		else
			reading = stream_all
		end
	end
	return setmetatable({
		status = code,
		_body = body,
		_interface = interface,
		_reading = reading,
		header = header,
		connected = true,
	}, stream)
end

return M
