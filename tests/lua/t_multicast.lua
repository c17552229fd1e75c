-- skynet.multicast: subscribers in several services each get every publish once, in
-- the channel's order; unsubscribe, delete, a subscriber that unsubscribes or dies
-- with deliveries still queued, and the shared packages all freed (core.live()).
local skynet = require "skynet"
require "skynet.manager"
local mc = require "skynet.multicast"
local core = require "skynet.multicast.core"

local mode = ...

if mode == "sub" then
	-- per channel: got[id] = { "tag:n", ... } (tag "n": only counted, see stats)
	local got, stats, chans = {}, {}, {}
	local function record(c, source, tag, n, extra)
		local id = c.channel
		if tag == "n" then
			local s = stats[id]
			s.count = s.count + 1
			if n ~= s.last + 1 then
				s.ordered = false
			end
			s.last = n
			return
		end
		local list = got[id]
		local e = tag .. ":" .. tostring(n)
		if type(extra) == "table" then
			e = e .. ":" .. tostring(extra.k)
		end
		list[#list + 1] = e
		if tag == "stop" and n == skynet.self() then
			c:unsubscribe()
		end
	end
	skynet.start(function()
		skynet.dispatch("lua", function(_, source, cmd, id, arg)
			if cmd == "init" then
				got[id], stats[id] = {}, { count = 0, last = 0, ordered = true }
				local c = mc.new { channel = id, dispatch = record }
				chans[id] = c
				c:subscribe()
				skynet.ret()
			elseif cmd == "got" then
				skynet.retpack(got[id], stats[id])
			elseif cmd == "unsub" then
				chans[id]:unsubscribe()
				skynet.ret()
			elseif cmd == "resub" then
				chans[id]:subscribe()
				skynet.ret()
			elseif cmd == "busy" then
				-- hold this worker so deliveries pile up in the queue
				skynet.send(source, "lua", "spinning")
				local stop = skynet.now() + arg
				while skynet.now() < stop do end
			end
		end)
	end)
	return
end

if mode == "pub" then
	skynet.start(function()
		skynet.dispatch("lua", function(_, _, id, tag, n)
			local c = mc.new { channel = id }
			for i = 1, n do
				c:publish(tag, i)
			end
			skynet.ret()
		end)
	end)
	return
end

package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"

local spinning = {}

local function busy(addr, ticks)
	spinning[addr] = nil
	skynet.send(addr, "lua", "busy", nil, ticks)
	while not spinning[addr] do
		skynet.sleep(1)
	end
end

local function got(addr, id)
	return skynet.call(addr, "lua", "got", id)
end

local function wait_free(what)
	for _ = 1, 300 do
		if core.live() == 0 then
			break
		end
		skynet.sleep(1)
	end
	local n, bytes = core.live()
	T.eq(n, 0, what .. ": live packages")
	T.eq(bytes, 0, what .. ": live package bytes")
end

local function core_functions()
	local p, sz = core.pack(skynet.pack("x", 1))
	T.eq(sz, 8, "pack: a package address")
	T.eq(select(1, core.live()), 1, "one live package")
	local delivery = skynet.tostring(p, sz)
	local pkg = core.bind(p, 2)
	T.eq(pkg, p, "bind returns the package")
	T.errors("bind twice", "Can't bind a multicast package more than once", core.bind, p, 1)
	local pkg2, msg, msz = core.unpack(delivery)
	T.eq(pkg2, p, "unpack: the package")
	local a, b = skynet.unpack(msg, msz)
	T.eq(a .. b, "x1", "unpack: the message")
	core.close(pkg)
	T.eq(select(1, core.live()), 1, "one reference left")
	core.close(pkg)
	T.eq(select(1, core.live()), 0, "last close frees")
	T.errors("close after free", "Invalid multicast package", core.close, pkg)
	T.errors("unpack of a freed package", "Invalid multicast package", core.unpack, delivery)
	T.errors("unpack, bad size", "Invalid multicast package size 4", core.unpack, "abcd")
	T.eq(core.nextid(0), 256, "nextid")
	T.eq(core.nextid(0x7fffff05), 5, "nextid clears the top bit")
	local r = core.pack(skynet.pack("remote"))
	local rmsg, rsz = core.remote(r)
	T.eq(skynet.unpack(rmsg, rsz), "remote", "remote: the message back")
	skynet.trash(rmsg, rsz)
	local c = core.packremote(skynet.pack("copied"))
	local _, cmsg, csz = core.unpack(skynet.tostring(core.bind(c, 1), 8))
	T.eq(skynet.unpack(cmsg, csz), "copied", "packremote copies")
	core.close(c)
	T.eq(select(1, core.live()), 0, "no package left")
end

T.run(function()
	skynet.dispatch("lua", function(_, source, cmd)
		if cmd == "spinning" then
			spinning[source] = true
		end
	end)
	core_functions()

	-- three subscribers in three services, and this service with a raw unpack
	local ch = mc.new()
	local id = ch.channel
	local s1 = skynet.newservice(SERVICE_NAME, "sub")
	local s2 = skynet.newservice(SERVICE_NAME, "sub")
	local s3 = skynet.newservice(SERVICE_NAME, "sub")
	for _, s in ipairs { s1, s2, s3 } do
		skynet.call(s, "lua", "init", id)
	end
	local raw = {}
	local me = mc.new {
		channel = id,
		unpack = skynet.tostring,
		dispatch = function(c, source, bytes)
			raw[#raw + 1] = bytes
			T.eq(source, skynet.self(), "source is the publisher")
			T.eq(c.channel, id, "dispatch gets the channel object")
		end,
	}
	me:subscribe()
	me:subscribe()	-- twice: still one delivery
	ch:publish("hello", 1, { k = "v" })
	ch:publish("world", 2)
	for _, s in ipairs { s1, s2, s3 } do
		T.seq(got(s, id), { "hello:1:v", "world:2" }, "each subscriber, each publish once")
	end
	T.eq(#raw, 2, "publisher subscribed to its own channel")
	T.eq(raw[1], skynet.packstring("hello", 1, { k = "v" }), "conf.unpack sees the packed bytes")
	me:unsubscribe()
	T.check(tostring(ch):match "^%[Multicast:%x+%]$", "tostring " .. tostring(ch))

	-- two publishers at once: each keeps its order, every subscriber sees one sequence
	local p1 = skynet.newservice(SERVICE_NAME, "pub")
	local p2 = skynet.newservice(SERVICE_NAME, "pub")
	local done = 0
	for _, job in ipairs { { p1, "a" }, { p2, "b" } } do
		skynet.fork(function()
			skynet.call(job[1], "lua", id, job[2], 200)
			done = done + 1
		end)
	end
	while done < 2 do
		skynet.sleep(1)
	end
	local seqs = {}
	for i, s in ipairs { s1, s2, s3 } do
		local list = got(s, id)
		local a, b, ok = 0, 0, true
		for j = 3, #list do
			local tag, n = list[j]:match "^(%a+):(%d+)$"
			if tag == "a" then
				a = a + 1
				ok = ok and tonumber(n) == a
			else
				b = b + 1
				ok = ok and tonumber(n) == b
			end
		end
		T.eq(#list, 402, "subscriber " .. i .. ": every publish once")
		T.check(ok and a == 200 and b == 200, "subscriber " .. i .. ": each publisher's order kept")
		seqs[i] = table.concat(list, " ")
	end
	T.check(seqs[1] == seqs[2] and seqs[2] == seqs[3], "all subscribers see the same order")
	wait_free("after two publishers")

	-- unsubscribe stops delivery (and subscribing again restarts it)
	skynet.call(s3, "lua", "unsub", id)
	ch:publish("after", 1)
	T.eq(got(s1, id)[403], "after:1", "a subscriber still gets it")
	T.eq(#got(s3, id), 402, "an unsubscribed service does not")
	skynet.call(s3, "lua", "resub", id)
	ch:publish("again", 1)
	T.eq(got(s3, id)[403], "again:1", "subscribed again")
	skynet.call(s3, "lua", "unsub", id)
	wait_free("after unsubscribe")

	-- s2 unsubscribes while 100 deliveries are already queued for it (#1141): they
	-- are dropped, and each still gives its reference back
	busy(s2, 50)
	ch:publish("stop", s2)
	for i = 1, 100 do
		ch:publish("late", i)
	end
	local l2 = got(s2, id)
	T.eq(#l2, 405, "nothing after the unsubscribing delivery")
	T.eq(l2[#l2], "stop:" .. s2, "the unsubscribing delivery itself arrived")
	T.eq(#got(s1, id), 505, "the other subscriber got all of them")
	ch:publish("after_stop", 1)
	T.eq(#got(s2, id), 405, "the unsubscription reached multicastd")
	wait_free("after an unsubscribe with deliveries in flight")

	-- a subscriber killed with deliveries queued, and publishes after its death
	local s4 = skynet.newservice(SERVICE_NAME, "sub")
	skynet.call(s4, "lua", "init", id)
	busy(s4, 50)
	for i = 1, 50 do
		ch:publish("doomed", i)
	end
	skynet.kill(s4)
	for i = 1, 10 do
		ch:publish("postmortem", i)
	end
	T.eq(#got(s1, id), 566, "the survivor got everything")
	wait_free("after a subscriber died with deliveries queued")

	-- delete: no more deliveries on that id; new channels get new ids
	local ch2 = mc.new()
	T.check(ch2.channel ~= id, "a new id")
	T.eq(ch2.channel % 256, 0, "ids carry harbor 0 in the low byte")
	skynet.call(s1, "lua", "init", ch2.channel)
	ch2:publish("x", 1)
	local id2 = ch2.channel
	ch2:delete()
	T.eq(ch2.channel, nil, "a deleted channel object has no id")
	T.errors("publish on a deleted object", "channel deleted", ch2.publish, ch2, "y")
	mc.new({ channel = id2 }):publish("y", 1)
	T.seq(got(s1, id2), { "x:1" }, "nothing delivered after delete")
	wait_free("after delete")

	-- 10,000 publishes to three subscribers: all delivered in order, all freed
	local ch3 = mc.new()
	local s5 = skynet.newservice(SERVICE_NAME, "sub")
	local s6 = skynet.newservice(SERVICE_NAME, "sub")
	for _, s in ipairs { s1, s5, s6 } do
		skynet.call(s, "lua", "init", ch3.channel)
	end
	local peak = 0
	for i = 1, 10000 do
		ch3:publish("n", i, string.rep("z", 100))
		if i % 100 == 0 then
			peak = math.max(peak, (core.live()))
		end
	end
	for _, s in ipairs { s1, s5, s6 } do
		local _, st = got(s, ch3.channel)
		T.eq(st.count, 10000, "10,000 deliveries")
		T.check(st.ordered and st.last == 10000, "in publish order")
	end
	T.check(peak < 10000, "packages are freed while publishing (peak " .. peak .. ")")
	wait_free("after 10,000 publishes")
end)
