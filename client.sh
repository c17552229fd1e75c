#!/bin/sh
# Run the test client: ./client.sh [SERVER_IP] [PORT]
# It needs only our own interpreter (target/release/skynet-lua: Lua 5.4 with lsocket
# and sproto.core built in), built with cargo when missing. SKYNET_LUA overrides it.
ROOT=$(cd "$(dirname "$0")" && pwd)
LUA=${SKYNET_LUA:-$ROOT/target/release/skynet-lua}
if [ -z "$SKYNET_LUA" ] && [ ! -x "$LUA" ]; then
	(cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --bin skynet-lua) || exit 1
fi
exec "$LUA" "$ROOT/client/simpleclient.lua" "$ROOT" "$@"
