/* A user's own Lua 5.4 C module, built by tests/cmodules.rs with
 *   cc -shared -fPIC -I/usr/include/lua5.4 probe.c -o probe.so
 * and loaded through package.cpath by the skynet and skynet-lua binaries. It calls back
 * into Lua (lua_call, lua_callk), raises errors (luaL_error, luaL_argerror) and keeps
 * state in a userdata with a metatable and __gc, so the tests can show that the binary's
 * Lua C API serves it and that errors cross the boundary cleanly. It does not link
 * against liblua: every lua_* and luaL_* symbol resolves against the host binary. */

#include <lua.h>
#include <lauxlib.h>

/* probe.call(f, ...): f(...) through lua_call; returns f's results. */
static int probe_call(lua_State *L) {
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

static int probe_callk_cont(lua_State *L, int status, lua_KContext ctx) {
	(void)status;
	(void)ctx;
	return lua_gettop(L);
}

/* probe.callk(f, ...): f(...) through lua_callk, so f may yield (skynet.call). */
static int probe_callk(lua_State *L) {
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, probe_callk_cont);
	return probe_callk_cont(L, LUA_OK, 0);
}

/* probe.fail(msg): raises "probe failed: <msg>" with luaL_error. */
static int probe_fail(lua_State *L) {
	const char *msg = luaL_checkstring(L, 1);
	return luaL_error(L, "probe failed: %s", msg);
}

/* probe.add(a, b): integers only; anything else is a luaL argument error. */
static int probe_add(lua_State *L) {
	lua_Integer a = luaL_checkinteger(L, 1);
	lua_Integer b = luaL_checkinteger(L, 2);
	lua_pushinteger(L, a + b);
	return 1;
}

/* probe.version(): the host's lua_version (504 for Lua 5.4). */
static int probe_version(lua_State *L) {
	lua_pushnumber(L, lua_version(L));
	return 1;
}

/* A counter userdata: probe.counter(start) -> c; c:bump([n]) -> value. */
#define COUNTER "probe.counter"

static int counter_new(lua_State *L) {
	lua_Integer *c = (lua_Integer *)lua_newuserdatauv(L, sizeof(lua_Integer), 0);
	*c = luaL_optinteger(L, 1, 0);
	luaL_setmetatable(L, COUNTER);
	return 1;
}

static int counter_bump(lua_State *L) {
	lua_Integer *c = (lua_Integer *)luaL_checkudata(L, 1, COUNTER);
	*c += luaL_optinteger(L, 2, 1);
	lua_pushinteger(L, *c);
	return 1;
}

static int counters_collected;

static int counter_gc(lua_State *L) {
	(void)L;
	counters_collected++;
	return 0;
}

/* probe.collected(): how many counters __gc has seen. */
static int probe_collected(lua_State *L) {
	lua_pushinteger(L, counters_collected);
	return 1;
}

int luaopen_probe(lua_State *L) {
	static const luaL_Reg counter_methods[] = {
		{"bump", counter_bump},
		{NULL, NULL},
	};
	static const luaL_Reg funcs[] = {
		{"call", probe_call},
		{"callk", probe_callk},
		{"fail", probe_fail},
		{"add", probe_add},
		{"version", probe_version},
		{"counter", counter_new},
		{"collected", probe_collected},
		{NULL, NULL},
	};
	if (luaL_newmetatable(L, COUNTER)) {
		luaL_newlib(L, counter_methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, counter_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	luaL_newlib(L, funcs); /* luaL_newlib checks the host's Lua version first */
	return 1;
}
