#!/bin/sh
# Start the sample server: ./run.sh [-D] [-k]
#   -D  daemon mode (log in run/skynet.log, pid in run/skynet.pid)
#   -k  kill the daemon named by run/skynet.pid
# Run it from the sample root: protoloader reads proto/*.sproto relative to the CWD.
# SKYNET_BIN overrides the server binary (default: target/release/skynet, built with
# cargo when missing).
ROOT=$(cd "$(dirname "$0")" && pwd)
export ROOT
DAEMON=false
export DAEMON

while getopts "Dk" arg; do
	case $arg in
	D)
		DAEMON=true
		;;
	k)
		kill "$(cat "$ROOT/run/skynet.pid")"
		exit 0
		;;
	*)
		echo "usage: $0 [-D] [-k]" >&2
		exit 1
		;;
	esac
done

BIN=${SKYNET_BIN:-$ROOT/target/release/skynet}
if [ -z "$SKYNET_BIN" ] && [ ! -x "$BIN" ]; then
	(cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --bin skynet) || exit 1
fi
mkdir -p "$ROOT/run"
exec "$BIN" "$ROOT/config"
