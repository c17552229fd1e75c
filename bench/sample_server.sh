#!/bin/sh
# The sample server under its real workload: starts this checkout's sample (its own
# config: thread = 8) with SERVER_BIN on free ports, drives it with loadgen.lua
# (bench/sample_load.sh, on this checkout's binary), and reports what the SERVER spent:
# CPU time (sum of its threads' on-CPU ns from /proc/PID/task/*/schedstat) and context
# switches (voluntary + involuntary, /proc/PID/task/*/status), per request.
# usage: bench/sample_server.sh [SERVER_BIN] [CLIENTS] [PINGS]
# SAMPLE_ROOT=DIR runs another sample tree instead (e.g. the original skynet_sample with
# its 2016 skynet built in DIR/skynet: SERVER_BIN=DIR/skynet/skynet); a sample that
# ignores sample_port is found on the port its hub logs ("Listen ip:port").
# Figure to beat (issue 14): the original skynet_sample on 2016 skynet used 0.42-0.47 s
# of CPU and ~12,000 context switches for 50 clients x 400 pings (20,000 pings).
set -e
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$(cd "${SAMPLE_ROOT:-$HERE/..}" && pwd)
SERVER=${1:-$ROOT/target/release/skynet}; CLIENTS=${2:-50}; PINGS=${3:-400}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); CONSOLE=$(free_port)
RUN=$(mktemp -d -t sampleserver.XXXXXX)
# the sample's config, plus the ports; run from the sample root (protoloader reads proto/)
{ cat "$ROOT/config"; printf 'sample_port = "%s"\nsample_console = "%s"\nsample_ip = "127.0.0.1"\n' "$PORT" "$CONSOLE"; } \
	| sed "s|\$ROOT|$ROOT|g; s|\$DAEMON|false|g; s|^logpath = .*|logpath = \"$RUN\"|" > "$RUN/config"
cd "$ROOT"
"$SERVER" "$RUN/config" > "$RUN/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$RUN"' EXIT
i=0; until grep -q "Listen" "$RUN/server.log" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && { cat "$RUN/server.log"; exit 1; }; sleep 0.1; done
stats() {
	cpu=0; cs=0
	for t in /proc/$PID/task/*; do
		c=$(cut -d' ' -f1 "$t/schedstat"); cpu=$((cpu + c))
		v=$(awk '/^(non)?voluntary_ctxt_switches/ {s += $2} END {print s}' "$t/status"); cs=$((cs + v))
	done
	echo "$cpu $cs"
}
set -- $(stats); CPU0=$1; CS0=$2
PORT=$(sed -n 's/.*Listen [0-9.]*:\([0-9]*\).*/\1/p' "$RUN/server.log" | head -1)
OUT=$(sh "$HERE/sample_load.sh" "$HERE/.." "$ROOT/proto" "$CLIENTS" "$PINGS" "$PORT")
set -- $(stats); CPU1=$1; CS1=$2
N=$((CLIENTS * PINGS))
echo "$OUT" | sed 's/^BENCH sample/BENCH sample_client/'
awk -v c=$((CPU1 - CPU0)) -v s=$((CS1 - CS0)) -v n=$N 'BEGIN {
	printf "BENCH sample_server pings=%d server_cpu_s=%.3f cpu_us_per_ping=%.1f ctx_switches=%d cs_per_ping=%.2f (original 2016 skynet_sample: cpu_s 0.42-0.47, ctx_switches ~12000 for 20000 pings)\n", n, c / 1e9, c / 1e3 / n, s, s / n }'
