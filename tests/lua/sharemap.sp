# schema of t_sharemap (sharemap.register reads it into sproto slot 0)
.point {
	x 0 : integer
	y 1 : integer
}

.player {
	name 0 : string
	hp 1 : integer
	pos 2 : point
	tags 3 : *string
	alive 4 : boolean
}
