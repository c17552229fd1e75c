-- 2016 module name of skynet.crypt.
return require "skynet.crypt"
