-- sprotoparser: schema text -> binary bundle.
-- Backed by the native parser in sproto.core (no lpeg); the bundle is byte-identical
-- to the reference parser's output, and errors carry the line number.
local core = require "sproto.core"

local parser = {}

-- parse(text [, chunkname]) -> bundle string; raises on a bad schema.
function parser.parse(text, name)
	return core.parse(text, name or "=text")
end

-- dump(bundle): prints the bytes as hex, 16 per line.
function parser.dump(str)
	local line = {}
	for i = 1, #str do
		line[#line + 1] = string.format("%02X ", str:byte(i))
		if i % 16 == 0 then
			print(table.concat(line))
			line = {}
		elseif i % 8 == 0 then
			line[#line + 1] = "- "
		end
	end
	if #line > 0 then
		print(table.concat(line))
	end
end

return parser
