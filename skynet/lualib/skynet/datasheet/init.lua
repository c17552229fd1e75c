-- skynet.datasheet: read data sheets published with skynet.datasheet.builder.
--
--   datasheet.query(name) -> table   read-only by convention; each level is copied
--                                    into this service on first access; when the sheet
--                                    is updated, every table obtained from it shows
--                                    the new version (a table whose path vanished
--                                    errors on access)
local skynet = require "skynet"
local service = require "skynet.service"
local core = require "skynet.datasheet.core"

local datasheet = {}
local address
local sheets = setmetatable({}, {	-- name -> { object, handle, waiting }
	__gc = function()
		if address then
			skynet.send(address, "lua", "close")
		end
	end,
})

skynet.init(function()
	address = service.query "datasheet"
end)

local function follow(sheet)
	while true do
		local h = skynet.call(address, "lua", "monitor", sheet.handle)
		core.update(sheet.object, h)
		local last = sheet.handle
		sheet.handle = h
		skynet.send(address, "lua", "release", last)
	end
end

function datasheet.query(name)
	local sheet = sheets[name]
	if sheet and sheet.object then
		return sheet.object
	end
	if sheet then	-- another coroutine is asking already
		local co = coroutine.running()
		table.insert(sheet.waiting, co)
		skynet.wait(co)
		if sheet.object then
			return sheet.object
		end
		error(sheet.error)
	end
	sheet = { waiting = {} }
	sheets[name] = sheet
	local ok, h = pcall(skynet.call, address, "lua", "query", name)
	if ok then
		sheet.handle = h
		sheet.object = core.new(h)
		skynet.fork(follow, sheet)
	else
		sheets[name] = nil	-- not cached: a later query asks again
		sheet.error = h
	end
	for _, co in ipairs(sheet.waiting) do
		skynet.wakeup(co)
	end
	sheet.waiting = nil
	if not ok then
		error(h)
	end
	return sheet.object
end

return datasheet
