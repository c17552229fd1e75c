-- clusteragent: serves one accepted cluster link (docs/spec/cluster.md §3.3).
-- Started by clusterd with (clusterd, fd, peer address); owns the socket.
--
-- Frames are split with netpack (2-byte big-endian lengths, the cluster framing) and
-- decoded with skynet.cluster.core. A push is forwarded at once (rawsend); a request
-- runs in its own coroutine (rawcall) and its response frame is written when the
-- callee answers, so one slow callee does not hold up the link. Names ("@name") are
-- resolved through clusterd and cached until clusterd says they changed.
--
-- Hostile or broken input (a frame that does not decode, a part without its head, a
-- multi-part larger than `cluster_maxmsg` or bigger than it said, too many unfinished
-- multi-parts) closes the link with a log line naming the peer; nothing is buffered
-- past those bounds.
local skynet = require "skynet"
local driver = require "skynet.socketdriver"
local netpack = require "skynet.netpack"
local core = require "skynet.cluster.core"

local clusterd, fd, peer = ...
clusterd = tonumber(clusterd)
fd = tonumber(fd)

local maxmsg = tonumber(skynet.getenv "cluster_maxmsg") or 64 * 1024 * 1024
local MAXLARGE = 64	-- unfinished multi-part requests per link

local unpackrequest, packresponse, isname = core.unpackrequest, core.packresponse, core.isname
local dsend = driver.send
local trash = skynet.trash

local closed = false
local large, nlarge = {}, 0	-- session -> { addr, is_push, tag, size, got, parts }
local tracetag
local names = {}	-- "@name" -> address (cache)

local function close_link(reason)
	if closed then
		return
	end
	closed = true
	if reason then
		skynet.error(string.format("cluster link from %s: %s; closing it", peer, reason))
	end
	driver.close(fd)
	for _, req in pairs(large) do
		req.parts = nil
	end
	large = {}
	skynet.send(clusterd, "lua", "agentexit")
	skynet.exit()
end

-- Responses produced while more messages wait in our queue are gathered and written
-- with one send once the queue is empty (or 64 KB gathered): concurrent callers cost
-- one syscall and one wake-up of the peer per burst.
local outq, nout, outbytes = {}, 0, 0
local intcommand = require("skynet.core").intcommand

local function flush()
	if nout == 1 then
		dsend(fd, outq[1])
		outq[1] = nil
	elseif nout > 1 then
		dsend(fd, outq)
		outq = {}
	end
	nout, outbytes = 0, 0
end

local flush_armed = false
local function armed_flush()
	flush_armed = false
	if nout > 0 and not closed then
		flush()
	end
end

local function maybe_flush()
	if nout > 0 and not closed and (outbytes >= 65536 or intcommand("STAT", "mqlen") == 0) then
		flush()
	elseif nout > 0 and not flush_armed then
		-- a message that is not ours may come next: flush after it at the latest
		flush_armed = true
		skynet.timeout(0, armed_flush)
	end
end

local function respond(session, ok, msg, sz)
	if closed then
		return
	end
	local r = packresponse(session, ok, msg, sz)
	if type(r) == "table" then
		flush()
		for i = 1, #r do
			dsend(fd, r[i])
		end
	else
		nout = nout + 1
		outq[nout] = r
		outbytes = outbytes + #r
		maybe_flush()
	end
end

local function resolve(name)
	local addr = names[name]
	if addr == nil then
		addr = skynet.call(clusterd, "lua", "queryname", name:sub(2))
		if addr then
			names[name] = addr
		end
	end
	return addr
end

-- "path:line: " of an error raised by the framework is noise to the remote caller.
local function reason_of(err)
	err = tostring(err)
	return (err:gsub("^[^\n]-:%d+: ", ""))
end

local function call(addr, session, msg, sz, tag)
	if type(addr) == "string" and isname(addr) then
		local name = addr
		addr = resolve(name)
		if not addr then
			trash(msg, sz)
			return respond(session, false, "Invalid name " .. name)
		end
	end
	local ok, rmsg, rsz
	if tag then
		ok, rmsg, rsz = pcall(skynet.tracecall, tag, addr, "lua", msg, sz)
	else
		ok, rmsg, rsz = pcall(skynet.rawcall, addr, "lua", msg, sz)
	end
	if ok then
		respond(session, true, rmsg, rsz)
	else
		respond(session, false, string.format("remote %s: %s", skynet.address(addr) or tostring(addr), reason_of(rmsg)))
	end
end

local function push(addr, msg, sz)
	if type(addr) == "string" and isname(addr) then
		local name = addr
		addr = names[name] or resolve(name)
		if not addr then
			trash(msg, sz)
			skynet.error(string.format("cluster link from %s: push to unknown name %s dropped", peer, name))
			return
		end
	end
	skynet.rawsend(addr, "lua", msg, sz)
end

local function query(session, msg, sz)
	local name = skynet.unpack(msg, sz)
	trash(msg, sz)
	if name == "" then
		-- a heartbeat: answered here, without asking clusterd
		return respond(session, false, "name not found")
	end
	local addr = resolve("@" .. tostring(name))
	if addr then
		respond(session, true, skynet.packstring(addr))
	else
		respond(session, false, "name not found")
	end
end

local function request(addr, session, msg, sz, is_push, tag)
	if addr == 0 then
		if session == 0 then
			return trash(msg, sz)
		end
		return skynet.fork(query, session, msg, sz)
	end
	if is_push then
		if type(addr) == "number" or names[addr] then
			return skynet.rawsend(names[addr] or addr, "lua", msg, sz)
		end
		return skynet.fork(push, addr, msg, sz)
	end
	skynet.fork(call, addr, session, msg, sz, tag)
end

-- One frame (a netpack block, freed here); returns an error text if it breaks the
-- protocol.
local function on_frame(frame, fsz)
	local ok, addr, session, msg, sz, padding, is_push = pcall(unpackrequest, frame, fsz)
	trash(frame, fsz)
	if not ok then
		return reason_of(addr)
	end
	if session == nil then
		tracetag = addr	-- a trace tag for the next request
		return
	end
	if padding then
		if msg == nil then
			-- multi-part head: sz is the total size
			if large[session] then
				return "repeated multi-part head for session " .. session
			end
			if sz > maxmsg then
				return string.format("announced a %d-byte message (cluster_maxmsg is %d)", sz, maxmsg)
			end
			if nlarge >= MAXLARGE then
				return "too many unfinished multi-part requests"
			end
			nlarge = nlarge + 1
			large[session] = { addr = addr, is_push = is_push, tag = tracetag, size = sz, got = 0, parts = { sz } }
			tracetag = nil
			return
		end
		local req = large[session]
		if not req then
			trash(msg, sz)
			return "multi-part data without its head (session " .. session .. ")"
		end
		req.got = req.got + sz
		if req.got > req.size then
			trash(msg, sz)
			return "more multi-part data than announced"
		end
		core.append(req.parts, msg, sz)
		return
	end
	local tag
	if addr == false then
		-- the last part
		local req = large[session]
		if not req then
			trash(msg, sz)
			return "multi-part end without its head (session " .. session .. ")"
		end
		large[session] = nil
		nlarge = nlarge - 1
		req.got = req.got + sz
		if req.got ~= req.size then
			trash(msg, sz)
			return "multi-part data of the wrong size"
		end
		core.append(req.parts, msg, sz)
		msg, sz = core.concat(req.parts)
		if not msg then
			if not req.is_push then
				respond(session, false, "Invalid large req")
			end
			return
		end
		addr, is_push, tag = req.addr, req.is_push, req.tag
	else
		tag, tracetag = tracetag, nil
	end
	request(addr, session, msg, sz, is_push, tag)
end

local queue

local function frame(id, msg, sz)
	if id ~= fd or closed then
		trash(msg, sz)
		return
	end
	local err = on_frame(msg, sz)
	if err then
		close_link(err)
	end
end

local EV = {}
EV.data = frame

function EV.more()
	for id, msg, sz in netpack.pop, queue do
		frame(id, msg, sz)
	end
end

function EV.close(id)
	if id == fd then
		close_link()
	end
end

function EV.error(id, msg)
	if id == fd then
		close_link("link error: " .. tostring(msg))
	end
end

function EV.warning(id, kb)
	if id == fd and kb > 0 then
		skynet.error(string.format("cluster link from %s: %d KB of responses unsent", peer, kb))
	end
end

function EV.init() end
function EV.open(id)
	driver.close(id)
end

skynet.register_protocol {
	name = "socket",
	id = skynet.PTYPE_SOCKET,
	unpack = function(msg, sz)
		return netpack.filter(queue, msg, sz)
	end,
	dispatch = function(_, _, q, kind, ...)
		queue = q
		if kind then
			EV[kind](...)
		end
		maybe_flush()
	end,
}

skynet.start(function()
	skynet.dispatch("lua", function(_, source, cmd)
		if cmd == "namechange" then
			names = {}
		elseif cmd == "exit" then
			close_link()
		else
			skynet.error(string.format("clusteragent: unknown command %s from %s", tostring(cmd), skynet.address(source)))
		end
	end)
	driver.start(fd)
	driver.nodelay(fd)
end)
