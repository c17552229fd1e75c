-- 2016 module name of snax.gateserver.
return require "snax.gateserver"
