-- Loaded through the shared code cache: its string constants are shared strings.
local M = {}

function M.make()
	return { alpha = 1, beta = 2, ["a key that is longer than forty characters, so a long string"] = 3 }
end

function M.get_alpha(t)
	return t.alpha
end

function M.get_long(t)
	return t["a key that is longer than forty characters, so a long string"]
end

function M.is_alpha(s)
	return s == "alpha"
end

return M
