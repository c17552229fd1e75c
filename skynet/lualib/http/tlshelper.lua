-- http.tlshelper: drive an `ltls.c` context over a skynet socket (upstream's module
-- of the same name and function set). The context never touches the fd: these
-- functions move the encrypted bytes between the socket and the context.
--
-- A failed handshake raises (the context's error text); the caller closes the socket
-- and the context (httpc, websocket and our examples do), so nothing is left behind.

local socket = require "http.sockethelper"
local c = require "ltls.c"

local tlshelper = {}

local function drive(tls_ctx, read, write)
	while not tls_ctx:finished() do
		local out = tls_ctx:handshake(read())
		if out then
			write(out)
		end
	end
end

-- client side: returns function(hostname) that runs the handshake
function tlshelper.init_requestfunc(fd, tls_ctx)
	local read = socket.readfunc(fd)
	local write = socket.writefunc(fd)
	return function(hostname)
		if hostname then
			tls_ctx:set_ext_host_name(hostname)
		end
		local hello = tls_ctx:handshake()
		if hello then
			write(hello)
		end
		drive(tls_ctx, read, write)
	end
end

-- server side: returns function() that runs the handshake
function tlshelper.init_responsefunc(fd, tls_ctx)
	local read = socket.readfunc(fd)
	local write = socket.writefunc(fd)
	return function()
		drive(tls_ctx, read, write)
		-- whatever the handshake left to send (session tickets)
		local rest = tls_ctx:write()
		if rest ~= "" then
			write(rest)
		end
	end
end

function tlshelper.closefunc(tls_ctx)
	return function()
		tls_ctx:close()
	end
end

-- A read function (http.internal's contract) over the context's plaintext.
function tlshelper.readfunc(fd, tls_ctx)
	local sockread = socket.readfunc(fd)
	local buf = ""
	-- the next plaintext: what came with the handshake first, then the socket
	local function plain()
		local s = tls_ctx:read()
		while s == "" do
			s = tls_ctx:read(sockread())
		end
		return s
	end
	return function(sz)
		if sz == nil then
			local s = buf
			buf = ""
			if s == "" then
				s = plain()
			end
			return s
		end
		if #buf < sz then
			-- gather the pieces, then join once (a long body is not copied per record)
			local parts, n = { buf }, #buf
			while n < sz do
				local s = plain()
				parts[#parts + 1] = s
				n = n + #s
			end
			buf = table.concat(parts)
		end
		local s = buf:sub(1, sz)
		buf = buf:sub(sz + 1)
		return s
	end
end

function tlshelper.writefunc(fd, tls_ctx)
	local write = socket.writefunc(fd)
	return function(s)
		return write(tls_ctx:write(s))
	end
end

function tlshelper.readallfunc(fd, tls_ctx)
	return function()
		local ds = socket.readall(fd) or ""
		return tls_ctx:read(ds)
	end
end

function tlshelper.newctx()
	return c.newctx()
end

function tlshelper.newtls(method, ssl_ctx, hostname)
	return c.newtls(method, ssl_ctx, hostname)
end

return tlshelper
