-- skynet.sharedata.corelib: upstream's module name for the helpers of sharedata and
-- sharedatad, over skynet.sharedata.core (our skynet.sharedata and sharedatad use the
-- core directly; this is for upstream's sharedatad and code written against it).
--
--   corelib.host.{new, delete, getref, markdirty, incref, decref}   the host's side
--   corelib.box(ptr) -> object        a read-only table over the data (holds a reference)
--   corelib.update(object, ptr)       moves the object, and every table below it, to ptr
--   corelib.flush(object)             nothing to do: objects move as soon as told
--   corelib.copy(ptr, ...) -> a plain copy of ptr[...] (or a value)
local core = require "skynet.sharedata.core"

local corelib = {
	host = {
		new = core.new,
		delete = core.delete,
		getref = core.getref,
		markdirty = core.markdirty,
		incref = core.incref,
		decref = core.decref,
	},
}

function corelib.box(ptr)
	return core.proxy(ptr)
end

function corelib.update(obj, ptr)
	core.switch(obj, ptr)
end

function corelib.flush(obj)
end

function corelib.copy(ptr, ...)
	return core.copy(ptr, ...)
end

return corelib
