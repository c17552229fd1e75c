-- Checks shared by the database driver test services (t_db_*.lua): each logs
-- "<TAG> FAIL <what>" per failed check and counts failures in U.failures.
local skynet = require "skynet"

return function(tag)
	local U = { failures = 0 }

	function U.check(cond, what)
		if not cond then
			U.failures = U.failures + 1
			skynet.error(tag .. " FAIL " .. what)
		end
		return cond
	end

	function U.eq(got, want, what)
		return U.check(got == want, string.format("%s: got %s want %s", what, tostring(got), tostring(want)))
	end

	-- Runs f(...) in a fork; a check fails if it is still blocked after `seconds`.
	function U.within(seconds, what, f, ...)
		local done, res = false, nil
		local args = table.pack(...)
		skynet.fork(function()
			res = table.pack(pcall(f, table.unpack(args, 1, args.n)))
			done = true
		end)
		for _ = 1, seconds * 10 do
			if done then
				return table.unpack(res, 1, res.n)
			end
			skynet.sleep(10)
		end
		U.check(false, what .. ": still blocked after " .. seconds .. "s")
		return false, "timeout"
	end

	return U
end
