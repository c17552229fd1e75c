/*
** skynet-rs: Lua function prototypes shared by every state of the process.
**
** A file is compiled once, in a private "master" state whose collector never runs;
** its prototype tree (nested prototypes, constants, debug names, source name) is then
** flagged shared: black, old, and LUAI_SHAREDBIT set. A shared object is never white,
** so no state's collector marks, moves or frees it, and nothing writes to it again:
** Lua 5.4 keeps no per-prototype cache, and long-string hashes are computed here,
** before publication. Any state can then make a closure over the tree
** (skynet_lua_pushshared), which costs a closure and its upvalues instead of a parse
** or an undump, and no memory for the code itself.
**
** Invariants:
** - a shared tree is immutable and lives until the process exits;
** - only skynet_lua_shareproto writes 'marked' of shared objects, once, under the
**   caller's lock on the master state, before any other state sees the pointer;
** - short strings equal by content may now have different addresses in one state
**   (its own and a shared one): the build's patch to eqshrstr and equalkey compares
**   contents when either is shared, and every state hashes with the same seed.
*/

#define LUA_CORE

#include "lprefix.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"

#include "lapi.h"
#include "lfunc.h"
#include "lgc.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"
#include "ltable.h"

#define SHARED_MARK	cast_byte(bitmask(BLACKBIT) | bitmask(LUAI_SHAREDBIT) | G_OLD)
#define isshared(o)	((o)->marked & bitmask(LUAI_SHAREDBIT))

/*
** The set of shared short strings, by text: open addressing, linear probing, slots
** published with release stores. One writer (under the master lock, through
** share_string); readers in any thread (luai_sharedlookup, from every state's
** interning) take no lock. Growing publishes a new table; the old one is left to
** readers that may still be probing it (tables only double, so the leak is bounded
** by the final size).
*/
typedef struct SSet {
  size_t size;  /* power of 2 */
  _Atomic(TString *) slot[1];
} SSet;

static _Atomic(SSet *) sset;
static size_t scount;  /* strings in the set; writer only */

static SSet *sset_new (size_t size) {
  size_t i;
  SSet *s = (SSet *)malloc(sizeof(SSet) + (size - 1) * sizeof(s->slot[0]));
  if (s == NULL)
    abort();  /* the master state is set up at start-up: nothing to recover */
  s->size = size;
  for (i = 0; i < size; i++)
    atomic_init(&s->slot[i], NULL);
  return s;
}

static void sset_put (SSet *s, TString *ts) {
  size_t mask = s->size - 1;
  size_t i = ts->hash & mask;
  while (atomic_load_explicit(&s->slot[i], memory_order_relaxed) != NULL)
    i = (i + 1) & mask;
  atomic_store_explicit(&s->slot[i], ts, memory_order_release);
}

static void sset_insert (TString *ts) {
  SSet *s = atomic_load_explicit(&sset, memory_order_relaxed);
  if (s == NULL || (scount + 1) * 2 > s->size) {  /* keep the load under 1/2 */
    SSet *n = sset_new(s == NULL ? 4096 : s->size * 2);
    if (s != NULL) {
      size_t i;
      for (i = 0; i < s->size; i++) {
        TString *o = atomic_load_explicit(&s->slot[i], memory_order_relaxed);
        if (o != NULL)
          sset_put(n, o);
      }
    }
    atomic_store_explicit(&sset, n, memory_order_release);
    s = n;
  }
  sset_put(s, ts);
  scount++;
}

/* The shared short string with this text and hash, or NULL (lstring.c's patch). */
TString *luai_sharedlookup (const char *str, size_t l, unsigned int h) {
  SSet *s = atomic_load_explicit(&sset, memory_order_acquire);
  size_t mask, i;
  TString *ts;
  if (s == NULL)
    return NULL;
  mask = s->size - 1;
  for (i = h & mask;
       (ts = atomic_load_explicit(&s->slot[i], memory_order_acquire)) != NULL;
       i = (i + 1) & mask) {
    if (ts->hash == h && ts->shrlen == l && memcmp(getshrstr(ts), str, l) == 0)
      return ts;
  }
  return NULL;
}

/*
** C strings, by address, known to intern to a shared string (luaS_new's patch). Every
** new state's own C-string cache starts empty, so without this each of the few
** hundred names the libraries register would be measured, hashed and looked up again
** in every state. Insert-only, fixed size, lock-free: a slot's key is claimed with a
** CAS and its value published after it (a reader that finds the key but no value yet
** just misses). A hit is checked with strcmp, as luaS_new's own cache does: the
** address may hold other text by now.
*/
#define CMAP_BITS 12
#define CMAP_SIZE (1u << CMAP_BITS)

typedef struct CEntry {
  _Atomic(const char *) key;
  _Atomic(TString *) val;
} CEntry;

static CEntry cmap[CMAP_SIZE];
static atomic_uint ccount;

static size_t cmap_slot (const char *p) {
  return (size_t)((((unsigned long long)(size_t)p >> 3) * 0x9E3779B97F4A7C15ull)
                  >> (64 - CMAP_BITS));
}

static void cmap_insert (const char *str, TString *ts) {
  size_t i = cmap_slot(str), n;
  if (atomic_load_explicit(&ccount, memory_order_relaxed) >= CMAP_SIZE / 2)
    return;  /* full enough: the rest take the normal route */
  for (n = 0; n < CMAP_SIZE; n++, i = (i + 1) & (CMAP_SIZE - 1)) {
    const char *k = NULL;
    if (atomic_compare_exchange_strong(&cmap[i].key, &k, str)) {
      atomic_store_explicit(&cmap[i].val, ts, memory_order_release);
      atomic_fetch_add_explicit(&ccount, 1, memory_order_relaxed);
      return;
    }
    if (k == str)
      return;  /* another thread has it */
  }
}

TString *luai_cstring (lua_State *L, const char *str) {
  size_t i = cmap_slot(str), n;
  TString *ts;
  for (n = 0; n < CMAP_SIZE; n++, i = (i + 1) & (CMAP_SIZE - 1)) {
    const char *k = atomic_load_explicit(&cmap[i].key, memory_order_acquire);
    if (k == NULL)
      break;
    if (k == str) {
      ts = atomic_load_explicit(&cmap[i].val, memory_order_acquire);
      if (ts != NULL && strcmp(str, getstr(ts)) == 0)
        return ts;
      return luaS_newlstr(L, str, strlen(str));  /* other text now: no insert */
    }
  }
  ts = luaS_newlstr(L, str, strlen(str));
  if (isshared(ts))
    cmap_insert(str, ts);
  return ts;
}

/* eqshrstr's slow path: two short strings at different addresses with equal hashes,
** one of them shared. */
int luaS_eqshared (TString *a, TString *b) {
  return a->shrlen == b->shrlen && memcmp(getshrstr(a), getshrstr(b), a->shrlen) == 0;
}

static void share_string (TString *s) {
  if (s == NULL || isshared(s))
    return;
  if (s->tt == LUA_VLNGSTR)
    luaS_hashlongstr(s);  /* cache the hash now: readers never write it */
  s->marked = SHARED_MARK;
  /* Reserved words stay out of the set: a new state's lexer flags its own copies. */
  if (s->tt == LUA_VSHRSTR && s->extra == 0)
    sset_insert(s);
}

static void share_proto (Proto *p) {
  int i;
  if (isshared(p))
    return;
  p->marked = SHARED_MARK;
  share_string(p->source);
  for (i = 0; i < p->sizek; i++) {  /* constants: nil, booleans, numbers, strings */
    if (ttisstring(&p->k[i]))
      share_string(tsvalue(&p->k[i]));
  }
  for (i = 0; i < p->sizeupvalues; i++)
    share_string(p->upvalues[i].name);
  for (i = 0; i < p->sizelocvars; i++)
    share_string(p->locvars[i].varname);
  for (i = 0; i < p->sizep; i++)
    share_proto(p->p[i]);
}

/*
** Flags the prototype tree of the Lua function at 'idx' (in the master state) shared
** and returns its root, or NULL if the value is not a Lua function.
*/
LUA_API const void *skynet_lua_shareproto (lua_State *L, int idx) {
  LClosure *cl;
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx))
    return NULL;
  cl = (LClosure *)lua_topointer(L, idx);
  share_proto(cl->p);
  return cl->p;
}

/*
** Pushes onto L a new closure over the shared prototype 'proto', its first upvalue
** (if any) set to L's globals, as lua_load does for a main chunk.
*/
LUA_API void skynet_lua_pushshared (lua_State *L, const void *proto) {
  Proto *p = (Proto *)proto;
  LClosure *cl;
  lua_lock(L);
  luaC_checkGC(L);
  cl = luaF_newLclosure(L, p->sizeupvalues);
  cl->p = p;
  setclLvalue2s(L, L->top.p, cl);
  api_incr_top(L);
  luaF_initupvals(L, cl);
  if (cl->nupvalues >= 1) {
    const TValue *gt = luaH_getint(hvalue(&G(L)->l_registry), LUA_RIDX_GLOBALS);
    setobj(L, cl->upvals[0]->v.p, gt);
    luaC_barrier(L, cl->upvals[0], gt);
  }
  lua_unlock(L);
}

/*
** Shares every short string the master state holds (called once, after opening the
** standard libraries in it): library and function names, metamethod names and other
** strings every state creates then resolve to the shared copies.
*/
LUA_API void skynet_lua_sharestrings (lua_State *L) {
  stringtable *tb = &G(L)->strt;
  int i;
  for (i = 0; i < tb->size; i++) {
    TString *ts;
    for (ts = tb->hash[i]; ts != NULL; ts = ts->u.hnext)
      share_string(ts);
  }
}

/* 1 if the Lua function at 'idx' runs a shared prototype (for tests). */
LUA_API int skynet_lua_isshared (lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION || lua_iscfunction(L, idx))
    return 0;
  return isshared(((LClosure *)lua_topointer(L, idx))->p) != 0;
}
