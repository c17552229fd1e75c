-- Helpers shared by the sharedata / sharetable / datasheet test services.
local U = {}

local function keyorder(a, b)
	local ta, tb = type(a), type(b)
	if ta ~= tb then
		return ta < tb
	end
	return a < b
end

-- A canonical text of a (possibly proxied) table: sorted keys, pairs-based, so two
-- tables with the same contents give the same text.
function U.canon(t, seen)
	if type(t) ~= "table" then
		if math.type(t) == "float" then
			return string.format("%.17g", t)
		end
		return type(t) == "string" and string.format("%q", t) or tostring(t)
	end
	local keys = {}
	for k in pairs(t) do
		keys[#keys + 1] = k
	end
	table.sort(keys, keyorder)
	local out = {}
	for _, k in ipairs(keys) do
		out[#out + 1] = U.canon(k) .. "=" .. U.canon(t[k])
	end
	return "{" .. table.concat(out, ",") .. "}"
end

-- Waits (up to 10 s) until f() is true; returns whether it became true.
function U.wait(f)
	local skynet = require "skynet"
	for _ = 1, 1000 do
		if f() then
			return true
		end
		skynet.sleep(1)
	end
	return f()
end

-- Resident set size of this process, in KiB.
function U.rss_kb()
	local f = assert(io.open("/proc/self/status"))
	local s = f:read "a"
	f:close()
	return tonumber(s:match "VmRSS:%s*(%d+)")
end

-- The sample data of every type.
function U.sample()
	return {
		int = 42,
		neg = -7,
		big = math.maxinteger,
		small = math.mininteger,
		float = 0.1,
		huge = 1e300,
		inf = math.huge,
		half = -0.5,
		str = "hello",
		empty = "",
		binary = "a\0b\1\255\0",
		long = string.rep("x", 1000),
		yes = true,
		no = false,
		array = { 10, 20, 30, "forty", { n = 50 } },
		nested = { a = { b = { c = { d = "deep" } } } },
		[1] = "one",
		[2] = "two",
		[3] = "three",
		[-1] = "minus one",
		[1000000] = "sparse",
		[0] = "zero",
	}
end

return U
