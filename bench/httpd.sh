#!/bin/sh
# httpd requests/s: bench_httpd.lua (keep-alive, one agent per connection group)
# driven by wrk with 64 connections. Needs wrk (Debian: apt-get install wrk).
# usage: bench/httpd.sh RUNTIME_DIR [SECONDS] [THREADS] [PORT]
# RUNTIME_DIR as for run.sh: an upstream tree (needs http/ in its lualib) or this
# project's checkout (target/release/skynet). Prints "BENCH httpd <req/s> ...".
set -e
R=$(cd "$1" && pwd); SECS=${2:-10}; THREADS=${3:-2}; PORT=${4:-18001}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v wrk >/dev/null || { echo "bench/httpd.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
if [ -x "$R/skynet" ] && [ -d "$R/skynet-src" ]; then
	BIN=${SKYNET_BIN:-$R/skynet}
else
	BIN=${SKYNET_BIN:-$R/target/release/skynet}
fi
FW=$R; [ -d "$R/skynet/lualib" ] && FW=$R/skynet
LUALIB=${SKYNET_LUALIB:-$FW/lualib}
SERVICE=${SKYNET_SERVICE:-$FW/service}
LOADER=${SKYNET_LOADER:-$LUALIB/loader.lua}
CONF=$(mktemp -t benchconf.XXXXXX)
LOG=$CONF.log
: > "$LOG"
cat > "$CONF" <<CONF
thread = $THREADS
harbor = 0
start = "bench_httpd"
bootstrap = "snlua bootstrap"
luaservice = "$HERE/?.lua;$SERVICE/?.lua"
lualoader = "$LOADER"
lua_path = "${HTTP_LUALIB:+$HTTP_LUALIB/?.lua;}$LUALIB/?.lua;$LUALIB/?/init.lua"
lua_cpath = "$R/luaclib/?.so"
cpath = "$R/cservice/?.so"
httpd_port = $PORT
CONF
SCHEME=http
if [ -n "$TLS" ]; then
	# https: a throwaway self-signed certificate (needs the openssl command)
	openssl req -x509 -newkey rsa:2048 -days 1 -nodes -subj /CN=localhost \
		-keyout "$CONF.key" -out "$CONF.crt" 2>/dev/null
	printf 'httpd_cert = "%s"\nhttpd_key = "%s"\nenablessl = true\n' "$CONF.crt" "$CONF.key" >> "$CONF"
	SCHEME=https
fi
"$BIN" "$CONF" > "$LOG" 2>&1 &
PID=$!
i=0
until grep -q "BENCH_HTTPD listening" "$LOG"; do
	i=$((i + 1)); [ $i -gt 100 ] && { cat "$LOG"; kill $PID; exit 1; }
	sleep 0.1
done
OUT=$(wrk -t 2 -c 64 -d "${SECS}s" "$SCHEME://127.0.0.1:$PORT/")
LAT=$(echo "$OUT" | awk '/Latency/ {print $2}')
kill $PID; wait $PID 2>/dev/null || true
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
ERR=$(echo "$OUT" | grep -E "Non-2xx|Socket errors" | tr '\n' ' ')
echo "BENCH httpd$TLS $RPS req/s latency avg $LAT (64 connections, ${SECS}s, thread=$THREADS) $ERR"
rm -f "$CONF" "$LOG" "$CONF.key" "$CONF.crt"
