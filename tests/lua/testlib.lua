-- Assertion helpers for the framework test services. Every test ends with
-- T.done(), which logs "TEST <name> PASS" or "TEST <name> FAIL: ..." and aborts.
local skynet = require "skynet"
require "skynet.manager"

local T = {}
local failures = {}
local name = SERVICE_NAME

local function show(v)
	if type(v) == "string" then
		return string.format("%q", v)
	end
	return tostring(v)
end

function T.check(cond, what)
	if not cond then
		failures[#failures + 1] = what
		skynet.error("CHECK FAILED: " .. what)
	end
	return cond
end

function T.eq(got, want, what)
	return T.check(got == want, string.format("%s: got %s, want %s", what, show(got), show(want)))
end

-- expected sequence (table of strings) vs actual
function T.seq(got, want, what)
	return T.eq(table.concat(got, " "), table.concat(want, " "), what)
end

function T.errors(what, pattern, f, ...)
	local ok, err = pcall(f, ...)
	if T.check(not ok, what .. ": expected an error") then
		if pattern then
			T.check(tostring(err):find(pattern, 1, true) ~= nil,
				string.format("%s: error %s lacks %q", what, show(tostring(err)), pattern))
		end
	end
	return err
end

function T.done(keep_running)
	if #failures == 0 then
		skynet.error("TEST " .. name .. " PASS")
	else
		skynet.error("TEST " .. name .. " FAIL: " .. table.concat(failures, "; "))
	end
	if not keep_running then
		skynet.sleep(20)	-- let the logger write the verdict
		skynet.abort()
	end
end

-- Run the test body in the start function; an error is a failure.
function T.run(body)
	skynet.start(function()
		local ok, err = xpcall(body, debug.traceback)
		if not ok then
			T.check(false, "test raised: " .. tostring(err))
		end
		T.done()
	end)
end

return T
