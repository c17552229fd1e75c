-- Run a chunk inside a service (debug RUN / debug_console inject).
-- The chunk sees `print` (captured), `_U` (upvalues reachable from the framework's
-- dispatcher) and `_P` (upvalues of each protocol's dispatch function).

local function collect_upvalues(into, f, seen)
	if seen[f] then
		return
	end
	seen[f] = true
	local i = 1
	while true do
		local name, value = debug.getupvalue(f, i)
		if name == nil then
			break
		end
		if into[name] == nil and name ~= "_ENV" then
			into[name] = value
		end
		if type(value) == "function" then
			collect_upvalues(into, value, seen)
		end
		i = i + 1
	end
end

return function(skynet, source, filename, args, ...)
	filename = filename and ("@" .. filename) or "=(load)"
	local output = {}
	local function print(...)
		local n = select("#", ...)
		local t = {}
		for i = 1, n do
			t[i] = tostring((select(i, ...)))
		end
		output[#output + 1] = table.concat(t, "\t")
	end
	local seen = {}
	local u = {}
	for i = 1, select("#", ...) do
		collect_upvalues(u, (select(i, ...)), seen)
	end
	local p = {}
	if type(u.proto) == "table" then
		for _, v in pairs(u.proto) do
			local name, dispatch = v.name, v.dispatch
			if name and dispatch and not p[name] then
				local pp = {}
				p[name] = pp
				collect_upvalues(pp, dispatch, {})
			end
		end
	end
	local env = setmetatable({ print = print, _U = u, _P = p }, { __index = _ENV })
	local f, err = load(source, filename, "bt", env)
	if not f then
		return false, { err }
	end
	local ok, e = pcall(f, table.unpack(args, 1, args.n))
	if not ok then
		output[#output + 1] = tostring(e)
		return false, output
	end
	return true, output
end
