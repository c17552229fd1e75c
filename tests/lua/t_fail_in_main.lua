error "t_fail_in_main fails in its main chunk"
