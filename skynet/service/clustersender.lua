-- clustersender: the outgoing link to one remote node (docs/spec/cluster.md §3.2).
--
-- Commands (lua protocol):
--   req(addr, msg, sz [, ti])   a call; answered later with the remote reply, or a
--                               PTYPE_ERROR carrying the reason ("call failed: ...")
--   push(addr, msg, sz)         one-way; failures are logged and counted
--   changenode(host|false, port), stat()
--
-- Design: no coroutine waits per call. A request gets a wire session; the caller's
-- (source, session) is kept under it and the response frame is redirected straight
-- to the caller as a PTYPE_RESPONSE (or a PTYPE_ERROR with the reason). The link is
-- opened on first use (and again after a failure, on the next use), frames go out
-- with socketdriver.send (written directly from the worker when nothing is queued),
-- TCP_NODELAY is set, and responses are split with netpack (2-byte big-endian frames,
-- which is the cluster framing). One 0.1 s ticker expires call timeouts and runs the
-- heartbeat: when nothing arrives for `cluster_heartbeat`, a name query for "" goes
-- out (any node, ours or upstream's, answers it); if nothing arrives for another
-- interval the link is declared dead, so a frozen or half-open peer fails the calls
-- waiting on it instead of hanging them.
--
-- Bounds: frames waiting for the link to open, and the link's unsent output (from the
-- socket layer's WARNING reports), are each capped by `cluster_queue` bytes; past it
-- calls fail with "send queue full" and pushes are dropped (logged and counted). A
-- multi-part response larger than `cluster_maxmsg` closes the link.
local skynet = require "skynet"
local c = require "skynet.core"
local driver = require "skynet.socketdriver"
local netpack = require "skynet.netpack"
local core = require "skynet.cluster.core"

local node, nodename, host, port = ...
port = tonumber(port)

local PTYPE_RESPONSE, PTYPE_ERROR = skynet.PTYPE_RESPONSE, skynet.PTYPE_ERROR
local self_handle = skynet.self()
local redirect = c.redirect
local packrequest, packpush, unpackresponse = core.packrequest, core.packpush, core.unpackresponse
local dsend = driver.send
local now = skynet.now

local default_timeout = tonumber(skynet.getenv "cluster_timeout") or 0	-- centiseconds, 0: none
local heartbeat = tonumber(skynet.getenv "cluster_heartbeat") or 500	-- centiseconds, 0: off
local queue_limit = tonumber(skynet.getenv "cluster_queue") or 16 * 1024 * 1024	-- bytes
local maxmsg = tonumber(skynet.getenv "cluster_maxmsg") or 64 * 1024 * 1024	-- bytes

local RETRY = 10	-- centiseconds after a failed connect before the next attempt

local fd	-- the link's socket id (nil: none)
local connected = false
local down = false	-- the node table says false
local session = 1
local backlog, nbacklog, backlog_bytes = {}, 0, 0	-- frames waiting for the link (each: string or parts table)
local backlog_kind = {}	-- i -> wire session of a request, or false for a push
local wbuf = 0	-- unsent output in bytes, from WARNING reports
local last_fail, last_reason = nil, nil	-- time and reason of the last failed connect
local connect_started = 0	-- when the pending connect began

local pend_src, pend_ses, pend_dl, pend_ti = {}, {}, {}, {}	-- wire session -> caller, caller's session, deadline, timeout
local npend, ndl = 0, 0
local large = {}	-- wire session -> parts of a multi-part response (false: drop it)

local last_recv = 0
local hb_session, hb_sent = nil, 0

local stat = {
	calls = 0, pushes = 0, replies = 0, errors = 0, timeouts = 0, dropped = 0,
	connects = 0, failures = 0, maxqueue = 0,
}
local drop_logged, drop_unlogged = nil, 0

local function prefix()
	return string.format("cluster node [%s] (%s:%s)", node, tostring(host), tostring(port))
end

local function reply_error(src, ses, reason)
	stat.errors = stat.errors + 1
	redirect(src, self_handle, PTYPE_ERROR, ses, reason)
end

local function fail(cs, reason)
	local src = pend_src[cs]
	if src then
		pend_src[cs] = nil
		npend = npend - 1
		if pend_dl[cs] then
			pend_dl[cs], pend_ti[cs] = nil, nil
			ndl = ndl - 1
		end
		reply_error(src, pend_ses[cs], reason)
		pend_ses[cs] = nil
	end
end

-- Count dropped pushes; log the first at once and then at most one line a second.
local function dropped(n, reason)
	stat.dropped = stat.dropped + n
	drop_unlogged = drop_unlogged + n
	local t = now()
	if not drop_logged or t - drop_logged >= 100 then
		skynet.error(string.format("%s: cluster.send dropped %d message(s) (%d in all): %s",
			prefix(), drop_unlogged, stat.dropped, reason))
		drop_logged = t
		drop_unlogged = 0
	end
end

local function next_session()
	local s = session
	session = s < 0x7fffffff and s + 1 or 1
	return s
end

-- Output coalescing: frames produced while more messages wait in our queue are
-- gathered and written with one send when the queue is empty (or 64 KB gathered), so
-- a burst of calls or pushes costs one syscall and one wake-up of the peer, not one
-- per frame. Nothing waits longer than our own queue takes to drain.
local outq, nout, outbytes, outpush = {}, 0, 0, 0
local intcommand = c.intcommand

local function flush()
	if nout == 1 then
		dsend(fd, outq[1])
		outq[1] = nil
	elseif nout > 1 then
		dsend(fd, outq)
		outq = {}
	end
	nout, outbytes, outpush = 0, 0, 0
end

local flush_armed = false
local function armed_flush()
	flush_armed = false
	if nout > 0 and fd then
		flush()
	end
end

local function maybe_flush()
	if nout == 0 then
		return
	end
	local mq = intcommand("STAT", "mqlen")
	if mq > stat.maxqueue then
		stat.maxqueue = mq
	end
	if outbytes >= 65536 or mq == 0 then
		flush()
	elseif nout > 0 and not flush_armed then
		-- a message that is not ours may come next: flush after it at the latest
		flush_armed = true
		skynet.timeout(0, armed_flush)
	end
end

local function write(frame, parts, is_push)
	if parts then
		flush()
		dsend(fd, frame)
		for i = 1, #parts do
			dsend(fd, parts[i])
		end
		return
	end
	nout = nout + 1
	outq[nout] = frame
	outbytes = outbytes + #frame
	if is_push then
		outpush = outpush + 1
	end
end

-- The link is gone (or could not open): every waiting call fails with the reason.
local function link_down(reason)
	local full = prefix() .. " " .. reason
	if fd then
		driver.close(fd)
		fd = nil
	end
	if connected then
		skynet.error(full)
	end
	connected = false
	wbuf = 0
	hb_session = nil
	large = {}
	local npush = outpush
	outq, nout, outbytes, outpush = {}, 0, 0, 0
	for i = 1, nbacklog do
		if not backlog_kind[i] then
			npush = npush + 1
		end
		backlog[i], backlog_kind[i] = nil, nil
	end
	nbacklog, backlog_bytes = 0, 0
	for cs in pairs(pend_src) do
		fail(cs, full)
	end
	if npush > 0 then
		dropped(npush, reason)
	end
	return full
end

local function connect()
	if fd or down then
		return
	end
	stat.connects = stat.connects + 1
	local ok, id = pcall(driver.connect, host, port)
	if not ok or not id then
		last_fail, last_reason = now(), "connect failed: " .. tostring(id)
		stat.failures = stat.failures + 1
		link_down(last_reason)
		return
	end
	fd = id
	connect_started = now()
end

local function flush_backlog()
	for i = 1, nbacklog do
		local f = backlog[i]
		if type(f) == "table" then
			for j = 1, #f do
				dsend(fd, f[j])
			end
		else
			dsend(fd, f)
		end
		backlog[i], backlog_kind[i] = nil, nil
	end
	nbacklog, backlog_bytes = 0, 0
end

-- Why a frame cannot go now (nil: it can, or it was queued for the link).
local function blocked()
	if down then
		return "is down"
	end
	if not fd and last_fail and now() - last_fail < RETRY then
		return last_reason
	end
	if wbuf >= queue_limit then
		return string.format("send queue full (%d KB unsent)", wbuf // 1024)
	end
	return nil
end

local function enqueue(cs, frame, parts)
	local bytes = #frame
	local item = frame
	if parts then
		item = { frame }
		for i = 1, #parts do
			item[i + 1] = parts[i]
			bytes = bytes + #parts[i]
		end
	end
	if backlog_bytes + bytes > queue_limit then
		return string.format("send queue full (%d bytes waiting for the link)", backlog_bytes)
	end
	nbacklog = nbacklog + 1
	backlog[nbacklog] = item
	backlog_kind[nbacklog] = cs or false
	backlog_bytes = backlog_bytes + bytes
	connect()
	return nil
end

local command = {}

function command.req(ses, src, addr, msg, sz, ti)
	stat.calls = stat.calls + 1
	local why = blocked()
	if why then
		if type(msg) == "userdata" then
			skynet.trash(msg, sz)
		end
		return reply_error(src, ses, prefix() .. " " .. why)
	end
	local cs = next_session()
	local ok, frame, nexts, parts = pcall(packrequest, addr, cs, msg, sz)
	if not ok then
		return reply_error(src, ses, prefix() .. ": " .. tostring(frame))
	end
	session = nexts
	pend_src[cs], pend_ses[cs] = src, ses
	npend = npend + 1
	ti = ti or default_timeout
	if ti and ti > 0 then
		pend_dl[cs], pend_ti[cs] = now() + ti, ti
		ndl = ndl + 1
	end
	if connected then
		write(frame, parts)
		maybe_flush()
	else
		why = enqueue(cs, frame, parts)
		if why then
			fail(cs, prefix() .. " " .. why)
		end
	end
end

function command.push(_, _, addr, msg, sz)
	stat.pushes = stat.pushes + 1
	local why = blocked()
	if why then
		if type(msg) == "userdata" then
			skynet.trash(msg, sz)
		end
		return dropped(1, why)
	end
	local ok, frame, nexts, parts = pcall(packpush, addr, session, msg, sz)
	if not ok then
		return dropped(1, tostring(frame))
	end
	if parts then	-- a multi-part push uses up its session
		session = nexts
	end
	if connected then
		write(frame, parts, true)
		maybe_flush()
	else
		why = enqueue(nil, frame, parts)
		if why then
			dropped(1, why)
		end
	end
end

function command.changenode(_, _, h, p)
	if not h then
		down = true
		if fd or npend > 0 or nbacklog > 0 then
			link_down("is down (cluster config)")
		end
		skynet.error(prefix() .. " marked down")
	else
		local changed = h ~= host or tonumber(p) ~= port
		down = false
		last_fail = nil
		if changed then
			local old = prefix()
			local new = h .. ":" .. tostring(p)
			if fd then
				-- before the switch, so the reason names the address of the closed link
				link_down("address changed to " .. new)
			end
			host, port = h, tonumber(p)
			skynet.error(old .. " now at " .. new)
		end
	end
end

function command.stat(ses, src)
	local t = {}
	for k, v in pairs(stat) do
		t[k] = v
	end
	t.node, t.host, t.port = node, host, port
	t.connected, t.down, t.pending, t.backlog, t.unsent = connected, down, npend, nbacklog, wbuf
	skynet.ret(skynet.pack(t))
end

-- responses

local function deliver(cs, ok, data)
	local src = pend_src[cs]
	if not src then
		return	-- a heartbeat's answer, or a call that timed out
	end
	pend_src[cs] = nil
	npend = npend - 1
	if pend_dl[cs] then
		pend_dl[cs], pend_ti[cs] = nil, nil
		ndl = ndl - 1
	end
	local ses = pend_ses[cs]
	pend_ses[cs] = nil
	if ok then
		stat.replies = stat.replies + 1
		redirect(src, self_handle, PTYPE_RESPONSE, ses, data)
	else
		reply_error(src, ses, string.format("%s: %s", prefix(), data))
	end
end

-- One response frame (a netpack block, freed here). Returns an error text for a frame
-- that breaks the protocol.
local function on_frame(msg, sz)
	local cs, ok, data, padding = unpackresponse(msg, sz)
	skynet.trash(msg, sz)
	if not cs then
		return "sent a malformed response frame"
	end
	last_recv = now()
	hb_session = nil
	if padding then
		local l = large[cs]
		if l == nil then
			-- multi-part begin: data is the total size
			if type(data) ~= "number" then
				return "sent a response part without its head"
			end
			if data > maxmsg then
				return string.format("sent a %d-byte response (cluster_maxmsg is %d)", data, maxmsg)
			end
			large[cs] = pend_src[cs] and { size = data, got = 0 } or false
		elseif l then
			if type(data) ~= "string" then
				return "sent a second multi-part head"
			end
			l.got = l.got + #data
			if l.got > l.size then
				return "sent more multi-part data than announced"
			end
			l[#l + 1] = data
		end
		return
	end
	local l = large[cs]
	if l ~= nil then
		large[cs] = nil
		if l then
			l.got = l.got + #data
			l[#l + 1] = data
			if l.got ~= l.size then
				return "sent a multi-part response of the wrong size"
			end
			data = table.concat(l)
		else
			return
		end
	end
	deliver(cs, ok, data)
end

local queue	-- netpack queue

local function frame(id, msg, sz)
	if id ~= fd then
		skynet.trash(msg, sz)
		return
	end
	local err = on_frame(msg, sz)
	if err then
		stat.failures = stat.failures + 1
		skynet.error(prefix() .. " " .. err .. ": closing the link")
		link_down(err)
	end
end

local EV = {}

EV.data = frame

function EV.more()
	for id, msg, sz in netpack.pop, queue do
		frame(id, msg, sz)
	end
end

function EV.init(id)
	if id ~= fd then
		return
	end
	connected = true
	last_fail = nil
	driver.nodelay(id)
	last_recv = now()
	skynet.error(string.format("%s connected", prefix()))
	flush_backlog()
end

function EV.close(id)
	if id == fd then
		if connected then
			link_down("closed the link")
		else
			last_fail, last_reason = now(), "connect failed"
			stat.failures = stat.failures + 1
			link_down(last_reason)
		end
	end
end

function EV.error(id, msg)
	if id == fd then
		if connected then
			link_down("link error: " .. tostring(msg))
		else
			last_fail, last_reason = now(), "connect failed: " .. tostring(msg)
			stat.failures = stat.failures + 1
			link_down(last_reason)
		end
	end
end

function EV.warning(id, kb)
	if id == fd then
		wbuf = kb * 1024
		if kb > 0 then
			skynet.error(string.format("%s: %d KB unsent", prefix(), kb))
		end
	end
end

function EV.open(id)
	-- not a listener: nothing is ever accepted here
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
		if connected then
			maybe_flush()
		end
	end,
}

-- timeouts and heartbeat
local function tick()
	while true do
		skynet.sleep(10)
		local t = now()
		if connected and nout > 0 then
			flush()
		end
		if ndl > 0 then
			for cs, dl in pairs(pend_dl) do
				if t >= dl then
					stat.timeouts = stat.timeouts + 1
					fail(cs, string.format("%s timeout: no reply in %.2f s", prefix(), pend_ti[cs] / 100))
				end
			end
		end
		if fd and not connected and heartbeat > 0 and t - connect_started >= 2 * heartbeat then
			-- a connect that neither succeeds nor fails (a black-holed address)
			last_fail = t
			last_reason = string.format("connect timed out after %.2f s", (t - connect_started) / 100)
			stat.failures = stat.failures + 1
			link_down(last_reason)
		end
		if connected and heartbeat > 0 then
			if hb_session then
				if t - hb_sent >= heartbeat then
					stat.failures = stat.failures + 1
					link_down(string.format("heartbeat timeout: nothing received for %.2f s (peer frozen or link half-open)",
						(t - last_recv) / 100))
				end
			elseif t - last_recv >= heartbeat then
				local cs = next_session()
				local f, nexts = packrequest(0, cs, skynet.pack(""))
				session = nexts
				hb_session, hb_sent = cs, t
				write(f)
				flush()
			end
		end
	end
end

skynet.start(function()
	skynet.dispatch("lua", function(ses, src, cmd, ...)
		local f = command[cmd]
		if cmd ~= "stat" then
			skynet.ignoreret()
		end
		if not f then
			if ses ~= 0 then
				reply_error(src, ses, "clustersender: unknown command " .. tostring(cmd))
			end
			return
		end
		f(ses, src, ...)
	end)
	skynet.fork(tick)
end)
