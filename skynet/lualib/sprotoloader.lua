-- sprotoloader: process-global schema slots (0..15) shared by every service.
local core = require "sproto.core"
local sproto = require "sproto"

local loader = {}

-- register(filename [, slot]): parse a schema file and store it in a slot.
function loader.register(filename, index)
	local f = assert(io.open(filename, "r"), "Can't open sproto file")
	local text = f:read "a"
	f:close()
	local bundle = require("sprotoparser").parse(text, "=" .. filename)
	core.saveproto(core.newproto(bundle), index or 0)
end

-- save(bundle [, slot]): store a bundle (a bundle the loader rejects stores nothing
-- usable; load() then fails).
function loader.save(bundle, index)
	core.saveproto(core.newproto(bundle), index or 0)
end

-- load([slot]) -> sproto object sharing the stored schema (never garbage collected).
function loader.load(index)
	return sproto.sharenew(core.loadproto(index or 0))
end

return loader
