-- snax.hotfix(methods, source, ...) -> pcall results of the patch's hotfix(...)
--
-- `source` is a snax file (accept./response. methods, optional `hotfix` function).
-- Every method it defines replaces the running method of the same group and name.
-- A patch function's upvalues that the patch leaves unbound (declared `local x`
-- without a value at the top of the patch, or its _ENV) are joined to the running
-- service's upvalue of the same name, so the patch sees and changes the live state.
-- Its own `hotfix(...)` runs last, with the same joins, and its results are returned.
local load_interface = require "snax.interface"

-- The environment the patch file runs in while it is read: a copy of the standard
-- globals, recognised afterwards as "not the service's _ENV yet".
local patch_env = {}
for k, v in pairs(_ENV) do
	patch_env[k] = v
end

local function env_id(f)
	for i = 1, math.huge do
		local n = debug.getupvalue(f, i)
		if n == nil then
			return nil
		end
		if n == "_ENV" then
			return debug.upvalueid(f, i)
		end
	end
end

-- name -> { f, index } for every upvalue reachable from the running methods (through
-- nested functions that share their _ENV); one name must mean one variable.
local function live_upvalues(methods)
	local found = {}
	local function walk(f, env)
		for i = 1, math.huge do
			local n, v = debug.getupvalue(f, i)
			if n == nil then
				break
			end
			local id = debug.upvalueid(f, i)
			local known = found[n]
			if known then
				assert(known.id == id, string.format("ambiguity local value %s", n))
			else
				found[n] = { f = f, index = i, id = id }
				if type(v) == "function" and env_id(v) == env then
					walk(v, env)
				end
			end
		end
	end
	for _, m in pairs(methods) do
		local f = m[4]
		if f then
			walk(f, env_id(f))
		end
	end
	return found
end

local function join(live, f)
	for i = 1, math.huge do
		local n, v = debug.getupvalue(f, i)
		if n == nil then
			break
		end
		if v == nil or v == patch_env then
			local target = live[n]
			if target then
				debug.upvaluejoin(f, i, target.f, target.index)
			end
		elseif type(v) == "function" then
			join(live, v)
		end
	end
end

local function find(methods, group, name)
	for _, m in pairs(methods) do
		if m[2] == group and m[3] == name then
			return m
		end
	end
end

local function apply(methods, source, ...)
	local patch = load_interface("patch", patch_env, function()
		return load(source, "=patch", "bt", patch_env)
	end)
	local live = live_upvalues(methods)
	for _, p in pairs(patch) do
		local group, name, f = p[2], p[3], p[4]
		if f then
			local target = find(methods, group, name)
			if not target then
				error(string.format("Patch mismatch %s.%s", group, name))
			end
			join(live, f)
			target[4] = f
		end
	end
	local hf = find(patch, "system", "hotfix")
	if hf and hf[4] then
		return hf[4](...)
	end
end

return function(methods, source, ...)
	return pcall(apply, methods, source, ...)
end
