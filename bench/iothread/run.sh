#!/bin/sh
# Builds the bench (release) and runs every variant interleaved (mio, tokio,
# workers-poll, mio, ...) for each load and worker count, REPS times; prints the RESULT
# lines (also kept in $OUT) and then the medians with ratios to mio.
# usage: bench/iothread/run.sh [REPS] [SECS]   env: LOADS, WORKERS, VARIANTS, OUT
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
REPS=${1:-5}; SECS=${2:-2}
LOADS=${LOADS:-"io sockecho sample"}
WORKERS=${WORKERS:-"2 8"}
VARIANTS=${VARIANTS:-"mio tokio workers-poll"}
OUT=${OUT:-$HERE/target/results.txt}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
nice -n 19 cargo build --release --quiet --manifest-path "$HERE/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release/iothread-bench
: > "$OUT"
for rep in $(seq "$REPS"); do
	for load in $LOADS; do
		for w in $WORKERS; do
			for v in $VARIANTS; do
				"$BIN" --variant "$v" --workers "$w" --load "$load" --secs "$SECS" | tee -a "$OUT"
			done
		done
	done
done
echo
"$BIN" summary < "$OUT"
