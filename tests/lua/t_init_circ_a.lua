require "t_init_circ_b"
return {}
