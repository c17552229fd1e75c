-- snax.interface: reads a snax service file and numbers its methods.
--
-- returns function(name, G, loader) -> methods, pattern
--   * The file is found on the `snax` config path (`?` = name) by `loader(path, name,
--     G)` (default: loadfile with environment G on each pattern in turn) and run once
--     with G as its environment.
--   * While it runs, `accept.<m> = f` and `response.<m> = f` define methods, and
--     assigning a global `init`, `exit`, `hotfix` or `profile` defines a system method.
--     Other globals it defines are copied into G afterwards.
--   * methods[id] = { id, group, name, f }. The ids are the wire format of the snax
--     protocol, so both ends must agree: 1..4 are init, exit, hotfix, profile (group
--     "system"; f may be nil), then accept/response methods in definition order.
local skynet = require "skynet"

local SYSTEM = { "init", "exit", "hotfix", "profile" }

local function load_from_path(path, name, G)
	local errors = {}
	for pattern in path:gmatch("[^;]+") do
		local f, err = loadfile((pattern:gsub("%?", name)), "bt", G)
		if f then
			return f, pattern
		end
		errors[#errors + 1] = err
	end
	error(table.concat(errors, "\n"))
end

return function(name, G, loader)
	loader = loader or load_from_path
	assert(getmetatable(G) == nil, "snax: the environment must have no metatable")
	for _, k in ipairs { "init", "exit", "accept", "response" } do
		assert(G[k] == nil, "snax: the environment already defines " .. k)
	end

	local methods = {}
	local system_index = {}
	for id, m in ipairs(SYSTEM) do
		methods[id] = { id, "system", m }
		system_index[m] = id
	end

	-- accept / response: assignment registers a method
	local function group(kind)
		local seen = {}
		return setmetatable({}, {
			__newindex = function(_, m, f)
				if type(m) ~= "string" then
					error(string.format("%s method only support string", kind))
				end
				if type(f) ~= "function" then
					error(string.format("%s.%s must be function", kind, m))
				end
				if seen[m] then
					error(string.format("%s.%s duplicate definition", kind, m))
				end
				seen[m] = true
				local id = #methods + 1
				methods[id] = { id, kind, m, f }
			end,
		})
	end

	local defined = {}	-- globals the file defines, copied into G afterwards
	local visible = setmetatable({ accept = group "accept", response = group "response" },
		{ __index = defined })

	local path = assert(skynet.getenv "snax", "please set snax in config file")
	local main, pattern = loader(path, name, G)

	setmetatable(G, {
		__index = visible,
		__newindex = function(_, k, v)
			local id = system_index[k]
			if id then
				if type(v) ~= "function" then
					error(string.format("%s must be a function", k))
				end
				methods[id][4] = v
			else
				defined[k] = v
			end
		end,
	})
	local ok, err = xpcall(main, debug.traceback)
	setmetatable(G, nil)
	assert(ok, err)
	for k, v in pairs(defined) do
		G[k] = v
	end
	return methods, pattern
end
