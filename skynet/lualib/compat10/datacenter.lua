-- 2016-era module name
return require "skynet.datacenter"
