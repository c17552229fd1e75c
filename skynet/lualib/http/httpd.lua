-- http.httpd: read one HTTP/1.x request and write one response over read/write
-- functions (upstream's module of the same name and function set).
--
--   httpd.read_request(read, bodylimit [, options]) -> code, url, method, header, body
--     code 200 for a request; otherwise the status to answer with (400 malformed,
--     413 header or body too large, 501 unknown transfer-coding, 505 bad version),
--     or nil, err when the connection failed (err == sockethelper.socket_error) or
--     the request line is malformed (err is a string).
--     options (ours): header_limit (bytes, default 8192); timeout + fd (below).
--     Bytes after the request (a pipelined next request) are kept for the next
--     read_request with the same read function, so a keep-alive loop loses nothing.
--   httpd.write_response(write, code, body [, header]) -> ok [, err]
--     body: a string (content-length), a function returning pieces then nil
--     (chunked), or nil. The status line and the header go out in one write, and so
--     does a string body with them.

local internal = require "http.internal"

local string = string
local table = table
local type = type
local pcall = pcall
local pairs = pairs
local ipairs = ipairs
local tostring = tostring

local httpd = {}

local http_status_msg = {
	[100] = "Continue",
	[101] = "Switching Protocols",
	[200] = "OK",
	[201] = "Created",
	[202] = "Accepted",
	[203] = "Non-Authoritative Information",
	[204] = "No Content",
	[205] = "Reset Content",
	[206] = "Partial Content",
	[300] = "Multiple Choices",
	[301] = "Moved Permanently",
	[302] = "Found",
	[303] = "See Other",
	[304] = "Not Modified",
	[305] = "Use Proxy",
	[307] = "Temporary Redirect",
	[400] = "Bad Request",
	[401] = "Unauthorized",
	[402] = "Payment Required",
	[403] = "Forbidden",
	[404] = "Not Found",
	[405] = "Method Not Allowed",
	[406] = "Not Acceptable",
	[407] = "Proxy Authentication Required",
	[408] = "Request Time-out",
	[409] = "Conflict",
	[410] = "Gone",
	[411] = "Length Required",
	[412] = "Precondition Failed",
	[413] = "Request Entity Too Large",
	[414] = "Request-URI Too Large",
	[415] = "Unsupported Media Type",
	[416] = "Requested range not satisfiable",
	[417] = "Expectation Failed",
	[500] = "Internal Server Error",
	[501] = "Not Implemented",
	[502] = "Bad Gateway",
	[503] = "Service Unavailable",
	[504] = "Gateway Time-out",
	[505] = "HTTP Version not supported",
}
httpd.status_msg = http_status_msg

local function readall(read, bodylimit, options)
	local headerlimit = options and options.header_limit
	local lines = {}
	local body = internal.recvheader(read, lines, "", headerlimit)
	if not body then
		return 413
	end
	local request = lines[1]
	if request == nil then
		-- an empty line only: nothing to answer
		return 400
	end
	local method, url, httpver = request:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
	if not method then
		return 400
	end
	if httpver ~= "1.0" and httpver ~= "1.1" then
		return 505
	end
	local header = internal.parseheader(lines, 2, {})
	if not header then
		return 400
	end
	local te = internal.single(header, "transfer-encoding")
	if te == false then
		return 400
	end
	te = te and te:lower()
	if te and te ~= "identity" and te ~= "chunked" then
		return 501
	end
	if te == "chunked" then
		local why
		body, why = internal.recvchunkedbody(read, bodylimit, header, body, headerlimit)
		if not body then
			return why == "body too large" and 413 or 400
		end
	else
		local length = internal.content_length(header)
		if length == false then
			return 400
		end
		if length then
			if bodylimit and length > bodylimit then
				return 413
			end
			body = internal.recvlength(read, body, length)
		else
			-- a request without a length has no body; what follows is the next one
			internal.unread(read, body)
			body = ""
		end
	end
	return 200, url, method, header, body
end

-- With options.timeout (centiseconds) and options.fd, a request that is not complete
-- within that time (a slow or silent client) shuts the socket down: read_request
-- returns nil, "timeout".
function httpd.read_request(read, bodylimit, options)
	local state
	if options and options.timeout and options.fd then
		state = {}
		local skynet = require "skynet"
		local socket = require "skynet.socket"
		local fd = options.fd
		skynet.timeout(options.timeout, function()
			if not state.done then
				state.expired = true
				socket.shutdown(fd)
			end
		end)
	end
	local ok, code, url, method, header, body = pcall(readall, read, bodylimit, options)
	if state then
		state.done = true
		if state.expired then
			return nil, "timeout"
		end
	end
	if ok then
		return code, url, method, header, body
	end
	return nil, code
end

local function has_field(header, name)
	for k in pairs(header) do
		if type(k) == "string" and k:lower() == name then
			return true
		end
	end
	return false
end

local function writeall(write, code, body, header)
	local t = { string.format("HTTP/1.1 %03d %s\r\n", code, http_status_msg[code] or "") }
	local n = 1
	local user_length = false
	if header then
		for k, v in pairs(header) do
			if type(v) == "table" then
				for _, vv in ipairs(v) do
					n = n + 1
					t[n] = string.format("%s: %s\r\n", k, vv)
				end
			else
				n = n + 1
				t[n] = string.format("%s: %s\r\n", k, v)
			end
		end
		user_length = has_field(header, "content-length")
	end
	local kind = type(body)
	if kind == "string" then
		if not user_length then
			n = n + 1
			t[n] = string.format("content-length: %d\r\n", #body)
		end
		n = n + 1
		t[n] = "\r\n"
		n = n + 1
		t[n] = body
		write(table.concat(t))
	elseif kind == "function" then
		n = n + 1
		t[n] = "transfer-encoding: chunked\r\n\r\n"
		write(table.concat(t))
		while true do
			local s = body()
			if s == nil then
				write("0\r\n\r\n")
				break
			end
			s = tostring(s)
			if s ~= "" then
				write(string.format("%x\r\n%s\r\n", #s, s))
			end
		end
	else
		assert(kind == "nil", "body must be a string, a function or nil")
		-- no body: say so, so a kept-alive client does not wait for the close
		if not user_length and code >= 200 and code ~= 204 and code ~= 304 then
			n = n + 1
			t[n] = "content-length: 0\r\n"
		end
		n = n + 1
		t[n] = "\r\n"
		write(table.concat(t))
	end
end

function httpd.write_response(...)
	return pcall(writeall, ...)
end

return httpd
