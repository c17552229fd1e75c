-- 2016 module name of skynet.mqueue.
return require "skynet.mqueue"
