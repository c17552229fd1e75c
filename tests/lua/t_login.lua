-- snax.loginserver + snax.msgserver end to end, the client written against the
-- documented wire protocol with skynet.crypt: DH handshake, token, subid; then the
-- msg gate's handshake (index, hmac_hash), requests/responses, error codes.
local skynet = require "skynet"
local socket = require "skynet.socket"
local crypt = require "skynet.crypt"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local function b64(s)
	return crypt.base64encode(s)
end

-- the login handshake; returns the result line and the secret
local function login(port, user, password)
	local fd = assert(socket.open("127.0.0.1", port))
	local challenge = crypt.base64decode(socket.readline(fd))
	local clientkey = crypt.randomkey()
	socket.write(fd, b64(crypt.dhexchange(clientkey)) .. "\n")
	local secret = crypt.dhsecret(crypt.base64decode(socket.readline(fd)), clientkey)
	socket.write(fd, b64(crypt.hmac64(challenge, secret)) .. "\n")
	local token = string.format("%s@%s:%s", b64(user), b64("sample"), b64(password))
	socket.write(fd, b64(crypt.desencode(secret, token)) .. "\n")
	local result = socket.readline(fd)
	socket.close(fd)
	return result, secret
end

local function packet(fd, text)
	socket.write(fd, string.pack(">s2", text))
end

local function read_packet(fd)
	local h = socket.read(fd, 2)
	if not h then
		return nil
	end
	return socket.read(fd, h:byte(1) * 256 + h:byte(2))
end

local function gate_handshake(port, username, index, secret)
	local fd = assert(socket.open("127.0.0.1", port))
	local hs = string.format("%s:%d", username, index)
	packet(fd, hs .. ":" .. b64(crypt.hmac_hash(secret, hs)))
	return fd, read_packet(fd)
end

T.run(function()
	local login_port = tonumber(skynet.getenv "login_port")
	local gate_port = tonumber(skynet.getenv "gate_port")
	skynet.newservice("login_master")
	local gate = skynet.newservice("msg_gate")
	skynet.call(gate, "lua", "open", {
		address = "127.0.0.1", port = gate_port, servername = "sample",
	})

	T.eq((login(login_port, "alice", "bad")), "401 Unauthorized", "refused token")
	local result, secret = login(login_port, "alice", "pw")
	T.eq(result and result:sub(1, 4), "200 ", "login: " .. tostring(result))
	local subid = crypt.base64decode(result:sub(5))
	T.eq(subid, "1", "the gate's subid")
	local username = string.format("%s@%s#%s", b64("alice"), b64("sample"), b64(subid))

	local fd, answer = gate_handshake(gate_port, username, 1, secret)
	T.eq(answer, "200 OK", "gate handshake")
	packet(fd, "hello" .. string.pack(">I4", 7))
	T.eq(read_packet(fd), "echo:hello" .. string.pack(">BI4", 1, 7), "a request's response")
	packet(fd, "boom" .. string.pack(">I4", 8))
	T.eq(read_packet(fd), string.pack(">BI4", 0, 8), "a raising handler answers ok = 0")
	socket.close(fd)

	-- reconnect: an old index is refused, a newer one accepted, and an answered
	-- session of the earlier login is answered again from the cache
	local fd2, a2 = gate_handshake(gate_port, username, 1, secret)
	T.eq(a2, "403 Index Expired", "old index")
	socket.close(fd2)
	local fd3, a3 = gate_handshake(gate_port, username, 2, secret)
	T.eq(a3, "200 OK", "new index")
	packet(fd3, "hello" .. string.pack(">I4", 7))
	T.eq(read_packet(fd3), "echo:hello" .. string.pack(">BI4", 1, 7), "cached answer resent")
	socket.close(fd3)

	local fd4, a4 = gate_handshake(gate_port, "nobody@x#y", 1, secret)
	T.eq(a4, "404 User Not Found", "unknown user")
	socket.close(fd4)
	local fd5, a5 = gate_handshake(gate_port, username, 3, "wrongsec")
	T.eq(a5, "401 Unauthorized", "wrong hmac")
	socket.close(fd5)
end)
