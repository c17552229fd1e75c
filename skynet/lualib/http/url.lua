-- http.url: split a request target into path and query, and a query into fields
-- (upstream's module of the same name and function set).
--
-- Decoding turns `+` into a space and `%XX` into its byte; unlike upstream, an
-- escape that is not two hex digits is kept as it is instead of raising.

local url = {}

local string = string
local char = string.char
local tonumber = tonumber

local function hexbyte(h)
	return char(tonumber(h, 16))
end

local function decode(s)
	s = s:gsub("+", " ")
	return (s:gsub("%%(%x%x)", hexbyte))
end

url.decode = decode

-- "path?query" -> decoded path, raw query ("" when there is none)
function url.parse(u)
	local path, query = u:match("^([^?]*)%??(.*)$")
	return decode(path), query
end

-- "a=1&b=2&a=3" -> { a = {"1", "3"}, b = "2" }; fields without `=` are skipped.
function url.parse_query(q)
	local r = {}
	for field in q:gmatch("[^&]+") do
		local k, v = field:match("^([^=]*)=(.*)$")
		if k then
			k, v = decode(k), decode(v)
			local old = r[k]
			if old == nil then
				r[k] = v
			elseif type(old) == "table" then
				old[#old + 1] = v
			else
				r[k] = { old, v }
			end
		end
	end
	return r
end

return url
