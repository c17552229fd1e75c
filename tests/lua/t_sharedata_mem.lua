-- One copy per process: 20 services reading a 1 MB data set add far less than 20 MB,
-- while 20 private copies (deepcopy) add about that much.
local skynet = require "skynet"
package.path = SERVICE_PATH .. "?.lua;" .. package.path
local T = require "testlib"
local sharedata = require "skynet.sharedata"
local core = require "skynet.sharedata.core"
local U = require "t_share_util"

local READERS = 20

local function settle()
	collectgarbage()
	collectgarbage()
	skynet.sleep(20)	-- idle workers give freed pages back
end

T.run(function()
	-- 1000 records of ~1 KB, every string distinct
	local data = {}
	local total = 0	-- what a reader's readall counts
	for i = 1, 1000 do
		data[i] = { id = i, name = "item" .. i, text = string.format("%06d", i) .. string.rep(string.char(65 + i % 26), 1018) }
		total = total + 1 + 1 + #data[i].name + #data[i].text
	end
	sharedata.new("big", data)
	data = nil
	local docs, bytes = core.stat()
	skynet.error(string.format("MEM data set: %d docs, %d KiB held in Rust", docs, bytes // 1024))
	T.check(bytes > 1000 * 1024, "the data set is about 1 MB")
	-- a reader service's own cost, without the data
	settle()
	local rss0 = U.rss_kb()
	local r = {}
	for i = 1, READERS do
		r[i] = skynet.newservice("t_sharedata_reader", "big")
	end
	settle()
	local rss_spawn = U.rss_kb()
	for i = 1, READERS do
		T.eq(skynet.call(r[i], "lua", "readall"), total, "reader " .. i .. " reads everything")
	end
	settle()
	local rss1 = U.rss_kb()
	for i = 1, READERS do
		skynet.call(r[i], "lua", "copy")
	end
	settle()
	local rss2 = U.rss_kb()
	local shared, copies = rss1 - rss0, rss2 - rss1
	skynet.error(string.format("MEM %d readers started and queried: +%d KiB RSS; after each read all 1000 records: +%d KiB in all; %d private copies (deepcopy) on top: +%d KiB",
		READERS, rss_spawn - rss0, shared, READERS, copies))
	T.check(shared < 8 * 1024, string.format("shared: +%d KiB for %d readers", shared, READERS))
	T.check(copies > 3 * shared, string.format("private copies cost more: +%d KiB vs +%d KiB", copies, shared))
end)
