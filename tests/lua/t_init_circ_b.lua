require "t_init_circ_a"
return {}
