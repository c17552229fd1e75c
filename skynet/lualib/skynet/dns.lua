-- skynet.dns: an asynchronous DNS resolver over one UDP socket per service
-- (upstream's module of the same name and function set: server, resolve, flush).
--
--   dns.server([address [, port]])  the name server (default: the first `nameserver`
--                                   of /etc/resolv.conf; port 53)
--   dns.resolve(name [, ipv6])      -> first address, all addresses; nil, why for an
--                                   illegal name; raises "timeout or no answer"
--   dns.flush()                     forget cached answers and /etc/hosts
--   dns.timeout                     centiseconds to wait for an answer (default 3000,
--                                   upstream's 30 s)
--
-- Names are looked up in /etc/hosts first, then in a cache honouring each answer's
-- TTL, then asked. Concurrent questions for the same name share one query.
--
-- Hostile input: a reply is parsed with bounds checks (a truncated packet, a name
-- longer than 255 bytes or compression pointers that loop are dropped with a log
-- line), must carry the id of a pending query AND repeat its question, so a stray or
-- forged datagram is ignored; nothing is cached from it.

local skynet = require "skynet"
local socket = require "skynet.socket"

local string = string
local table = table
local pcall = pcall
local tonumber = tonumber

local dns = {}
dns.timeout = 3000

local QTYPE_A, QTYPE_AAAA, QTYPE_CNAME = 1, 28, 5
local QCLASS_IN = 1

local server = {} -- address, port, fd
local hosts -- name -> { ipv4 = {...}, ipv6 = {...} }
local cache = { [QTYPE_A] = {}, [QTYPE_AAAA] = {} } -- name -> { expire, answers }
local pending = {} -- tid -> query
local inflight = {} -- qtype .. name -> query

local function read_file(path)
	local f = io.open(path)
	if not f then
		return nil
	end
	local s = f:read "a"
	f:close()
	return s
end

local function load_hosts()
	local t = {}
	for line in (read_file "/etc/hosts" or ""):gmatch "[^\n]+" do
		line = line:gsub("#.*", "")
		local ip, names = line:match "^%s*(%S+)%s+(.-)%s*$"
		if ip then
			local family = ip:find(":", 1, true) and "ipv6" or "ipv4"
			for name in names:gmatch "%S+" do
				name = name:lower()
				local e = t[name] or {}
				t[name] = e
				e[family] = e[family] or {}
				table.insert(e[family], ip)
			end
		end
	end
	return t
end

function dns.flush()
	hosts = nil
	cache[QTYPE_A] = {}
	cache[QTYPE_AAAA] = {}
end

function dns.server(address, port)
	if not address then
		address = ("\n" .. (read_file "/etc/resolv.conf" or "")):match "\n[ \t]*nameserver%s+(%S+)"
		assert(address, "no nameserver in /etc/resolv.conf")
	end
	if server.fd then
		socket.close(server.fd)
		server.fd = nil
	end
	server.address = address
	server.port = port or 53
end

-- Parse a (possibly compressed) name at `pos`; returns name, next position.
local function read_name(packet, pos)
	local labels, jumps, after = {}, 0, nil
	local len = 0
	while true do
		local n = packet:byte(pos)
		if n == nil then
			error "truncated name"
		end
		if n == 0 then
			pos = pos + 1
			break
		elseif n >= 0xc0 then
			local b = packet:byte(pos + 1)
			if b == nil then
				error "truncated pointer"
			end
			jumps = jumps + 1
			if jumps > 16 then
				error "compression pointers loop"
			end
			after = after or pos + 2
			pos = ((n & 0x3f) << 8 | b) + 1
		elseif n > 63 then
			error "invalid label"
		else
			local label = packet:sub(pos + 1, pos + n)
			if #label ~= n then
				error "truncated label"
			end
			len = len + n + 1
			if len > 255 then
				error "name too long"
			end
			labels[#labels + 1] = label
			pos = pos + n + 1
		end
	end
	return table.concat(labels, "."):lower(), after or pos
end

local function format_address(qtype, rdata)
	if qtype == QTYPE_A then
		return string.format("%d.%d.%d.%d", rdata:byte(1, 4))
	end
	local w = { string.unpack(">I2I2I2I2I2I2I2I2", rdata) }
	w[9] = nil
	for i = 1, 8 do
		w[i] = string.format("%x", w[i])
	end
	return table.concat(w, ":")
end

-- Returns tid, question name, qtype, answers (list), min ttl (seconds).
local function parse_reply(packet)
	local tid, flags, qd, an = string.unpack(">I2I2I2I2", packet)
	if flags & 0x8000 == 0 then
		error "not a reply"
	end
	if qd ~= 1 then
		error "expected one question"
	end
	local pos = 13
	local qname
	qname, pos = read_name(packet, pos)
	local qtype, qclass
	qtype, qclass, pos = string.unpack(">I2I2", packet, pos)
	local answers, ttl = {}, nil
	for _ = 1, an do
		local _name
		_name, pos = read_name(packet, pos)
		local atype, aclass, attl, rdlen
		atype, aclass, attl, rdlen, pos = string.unpack(">I2I2I4I2", packet, pos)
		local rdata = packet:sub(pos, pos + rdlen - 1)
		if #rdata ~= rdlen then
			error "truncated record"
		end
		pos = pos + rdlen
		if aclass == QCLASS_IN and atype == qtype and atype ~= QTYPE_CNAME then
			if (atype == QTYPE_A and rdlen == 4) or (atype == QTYPE_AAAA and rdlen == 16) then
				answers[#answers + 1] = format_address(atype, rdata)
				ttl = ttl and math.min(ttl, attl) or attl
			end
		end
	end
	return tid, qname, qtype, answers, ttl or 0, qclass
end

local function on_reply(packet)
	local ok, tid, qname, qtype, answers, ttl = pcall(parse_reply, packet)
	if not ok then
		skynet.error("DNS: dropped an invalid reply: " .. tostring(tid))
		return
	end
	local q = pending[tid]
	if not q or q.name ~= qname or q.qtype ~= qtype then
		return -- stray or forged
	end
	pending[tid] = nil
	if #answers > 0 then
		cache[qtype][qname] = { expire = skynet.now() + ttl * 100, answers = answers }
		q.answers = answers
	end
	for _, co in ipairs(q.waiting) do
		skynet.wakeup(co)
	end
end

local function open_server()
	if not server.address then
		dns.server()
	end
	if not server.fd then
		local fd = socket.udp(function(str)
			on_reply(str)
		end)
		socket.udp_connect(fd, server.address, server.port)
		server.fd = fd
	end
	return server.fd
end

local function new_tid()
	for _ = 1, 100 do
		local tid = math.random(0, 0xffff)
		if not pending[tid] then
			return tid
		end
	end
	error "too many pending dns queries"
end

local function encode_name(name)
	local t = {}
	for label in name:gmatch "[^.]+" do
		t[#t + 1] = string.pack("s1", label)
	end
	t[#t + 1] = "\0"
	return table.concat(t)
end

local function query(name, qtype)
	local key = qtype .. name
	local q = inflight[key]
	if not q then
		local fd = open_server()
		q = { name = name, qtype = qtype, tid = new_tid(), waiting = {} }
		inflight[key] = q
		pending[q.tid] = q
		local packet = string.pack(">I2I2I2I2I2I2", q.tid, 0x0100, 1, 0, 0, 0)
			.. encode_name(name) .. string.pack(">I2I2", qtype, QCLASS_IN)
		socket.write(fd, packet)
		skynet.timeout(dns.timeout, function()
			if pending[q.tid] == q then
				pending[q.tid] = nil
				skynet.error(string.format("DNS query %s timeout", name))
				for _, co in ipairs(q.waiting) do
					skynet.wakeup(co)
				end
			end
		end)
	end
	local co = coroutine.running()
	table.insert(q.waiting, co)
	skynet.wait(co)
	if inflight[key] == q then
		inflight[key] = nil
	end
	return q.answers
end

local function lookup_cache(name, qtype, stale_ok)
	local e = cache[qtype][name]
	if e and (stale_ok or e.expire > skynet.now()) then
		return e.answers
	end
end

function dns.resolve(name, ipv6)
	name = name:lower()
	if name:match "^%d+%.%d+%.%d+%.%d+$" then
		if ipv6 then
			return nil, "illegal ip address"
		end
		return name
	elseif name:find(":", 1, true) then
		if not ipv6 then
			return nil, "illegal ip address"
		end
		return name
	end
	if #name > 253 or not name:match "^[_%l%d%-%.]+$" or name:find("..", 1, true) then
		return nil, "illegal name"
	end
	hosts = hosts or load_hosts()
	local e = hosts[name]
	local list = e and e[ipv6 and "ipv6" or "ipv4"]
	if list then
		return list[1], list
	end
	local qtype = ipv6 and QTYPE_AAAA or QTYPE_A
	local answers = lookup_cache(name, qtype) or query(name, qtype) or lookup_cache(name, qtype, true)
	if not answers then
		error "timeout or no answer"
	end
	return answers[1], answers
end

return dns
