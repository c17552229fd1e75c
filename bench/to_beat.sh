#!/bin/sh
# Filter: appends "to_beat=<figure> (<source>)" from bench/targets.txt to each
# "BENCH <case> ..." line read on stdin; other lines pass through unchanged.
T="$(dirname "$0")/targets.txt"
awk -v tf="$T" '
BEGIN {
	while ((getline line < tf) > 0) {
		if (line ~ /^#/ || line ~ /^[ \t]*$/) continue
		n = split(line, f, /[ \t]+/)
		src = ""
		for (i = 3; i <= n; i++) src = src (i > 3 ? " " : "") f[i]
		fig[f[1]] = f[2]; why[f[1]] = src
	}
}
$1 == "BENCH" && ($2 in fig) { print $0 " | to_beat=" fig[$2] " (" why[$2] ")"; next }
{ print }'
