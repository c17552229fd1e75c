-- 2016 module name of skynet.socket.
return require "skynet.socket"
