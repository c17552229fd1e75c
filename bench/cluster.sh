#!/bin/sh
# Two cluster nodes on loopback: node b (cluster_server.lua) serves, node a
# (cluster_client.lua) runs the cases and prints BENCH lines.
# usage: bench/cluster.sh RUNTIME_DIR [CASE] [SECS] [THREADS]
# RUNTIME_DIR as in run.sh (an upstream tree or this project's checkout).
# CASE: seq, c16, send, kb4, kb64 (default: all).
set -e
R=$(cd "$1" && pwd); CASE=${2:-}; SECS=${3:-2}; THREADS=${4:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -x "$R/skynet" ] && [ -d "$R/skynet-src" ]; then
	BIN=${SKYNET_BIN:-$R/skynet}
else
	BIN=${SKYNET_BIN:-$R/target/release/skynet}
fi
FW=$R; [ -d "$R/skynet/lualib" ] && FW=$R/skynet
LUALIB=${SKYNET_LUALIB:-$FW/lualib}
SERVICE=${SKYNET_SERVICE:-$FW/service}
LOADER=${SKYNET_LOADER:-$LUALIB/loader.lua}
PORT=${BENCH_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
DIR=$(mktemp -d -t benchcluster.XXXXXX)
conf() {
	cat > "$DIR/config.$1" <<CONF
thread = $THREADS
harbor = 0
start = "$2"
bootstrap = "snlua bootstrap"
luaservice = "$HERE/?.lua;$SERVICE/?.lua"
lualoader = "$LOADER"
lua_path = "$LUALIB/?.lua;$LUALIB/?/init.lua"
lua_cpath = "$R/luaclib/?.so"
cpath = "$R/cservice/?.so"
bench_port = "$PORT"
bench_secs = "$SECS"
bench_case = "${CASE:-all}"
CONF
}
conf b cluster_server
conf a cluster_client
"$BIN" "$DIR/config.b" > "$DIR/b.log" 2>&1 &
BPID=$!
# node b goes whatever happens to this script (SIGTERM, then SIGKILL)
stop_b() { kill $BPID 2>/dev/null; sleep 1; kill -9 $BPID 2>/dev/null; rm -rf "$DIR"; }
trap stop_b EXIT INT TERM
i=0
until grep -q "BENCHNODE ready" "$DIR/b.log" 2>/dev/null; do
	i=$((i + 1)); [ $i -gt 100 ] && { cat "$DIR/b.log"; kill $BPID; exit 1; }
	sleep 0.1
done
# the client gets a deadline too (a stuck case must not leave processes behind)
timeout $((SECS * 10 + 60)) "$BIN" "$DIR/config.a" > "$DIR/a.log" 2>&1 || true
grep -a "BENCH " "$DIR/a.log" | sed "s/.*BENCH/BENCH/" | sh "$HERE/to_beat.sh"
grep -q BENCHDONE "$DIR/a.log" || { echo "client failed:"; tail -20 "$DIR/a.log"; }
rm -rf "$DIR"
