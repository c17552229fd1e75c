//! Builds Lua 5.4 from the `lua-src` crate's sources (the same sources mlua's `vendored`
//! feature compiles) with skynet-rs's shared-prototype patch, applied here at build time:
//!
//! 1. `eqshrstr` (lstring.h) and the short-string case of `equalkey` (ltable.c) compare
//!    contents when either string is shared. Stock Lua interns short strings per state and
//!    compares them by address; a shared prototype's constants come from another state.
//! 2. Every state gets the same string-hash seed (`luai_makeseed`, per process through
//!    ASLR), so equal strings hash alike in every state.
//! 3. `csrc/shared.c` (our code) marks a loaded function's prototype tree as shared and
//!    makes closures over it in other states. Shared short strings also go into one
//!    process-wide set that every state's interning consults before creating a string
//!    (lstring.c), so most equal strings keep one address and the content comparison of
//!    (1) stays rare; `luaC_fix` (lgc.c) leaves a shared string alone when a new state's
//!    metamethod names resolve to one.
//! 4. `luaS_new` (a C string, e.g. every name a library registers) consults a
//!    process-wide map from C-string address to the shared string it interned to
//!    before, instead of hashing and looking the text up again in every new state.
//! 5. `luaF_findupval` finds the main thread's open upvalues through a slot-indexed
//!    table before walking the list ([`FINDUPVAL_CACHED`]).
//!
//! The sources are found under Cargo's registry (`$CARGO_HOME/registry/src/*/lua-src-<v>/`)
//! or at `$SKYNET_LUA_SRC` (a directory holding Lua 5.4.9's `lapi.c`, ...).

use std::path::{Path, PathBuf};

const LUA_SRC_CRATE: &str = "lua-src-551.0.2";
const LUA_DIR: &str = "lua-5.4.9";

fn find_sources() -> PathBuf {
    println!("cargo:rerun-if-env-changed=SKYNET_LUA_SRC");
    if let Ok(dir) = std::env::var("SKYNET_LUA_SRC") {
        return PathBuf::from(dir);
    }
    let mut homes = Vec::new();
    if let Ok(h) = std::env::var("CARGO_HOME") {
        homes.push(PathBuf::from(h));
    }
    if let Ok(h) = std::env::var("HOME") {
        homes.push(Path::new(&h).join(".cargo"));
    }
    for home in homes {
        let Ok(regs) = std::fs::read_dir(home.join("registry/src")) else {
            continue;
        };
        for reg in regs.flatten() {
            let dir = reg.path().join(LUA_SRC_CRATE).join(LUA_DIR);
            if dir.join("lapi.c").is_file() {
                return dir;
            }
        }
    }
    panic!(
        "can't find {LUA_SRC_CRATE}/{LUA_DIR} under $CARGO_HOME/registry/src; \
         set SKYNET_LUA_SRC to a directory with Lua 5.4.9's sources"
    );
}

/// Lua 5.4.9's `luaF_findupval`, replaced by [`FINDUPVAL_CACHED`].
const FINDUPVAL: &str = "UpVal *luaF_findupval (lua_State *L, StkId level) {
  UpVal **pp = &L->openupval;
  UpVal *p;
  lua_assert(isintwups(L) || L->openupval == NULL);
  while ((p = *pp) != NULL && uplevel(p) >= level) {  /* search for it */
    lua_assert(!isdead(G(L), p));
    if (uplevel(p) == level)  /* corresponding upvalue? */
      return p;  /* return it */
    pp = &p->u.open.next;
  }
  /* not found: create a new upvalue after 'pp' */
  return newupval(L, level, pp);
}
";

/// Our `luaF_findupval`: the main thread's open upvalues are also kept in a small
/// table indexed by stack slot, so each closure a big main chunk (skynet.lua's) makes
/// does not walk the whole open-upvalue list for every local it captures (~9% of a
/// service start). An entry is always an open upvalue of the main thread: it is
/// forgotten when the upvalue is closed (luaF_closeupval) or freed (lgc.c); indexed
/// by offset, it survives stack reallocation. Other threads use the list as before.
const FINDUPVAL_CACHED: &str = "/* skynet-rs: see crates/lua54/build.rs, FINDUPVAL_CACHED */
#define UPCACHE_N (sizeof(((global_State *)0)->upcache) / sizeof(UpVal *))

static UpVal **upcache_slot (lua_State *L, const TValue *v) {
  global_State *g = G(L);
  size_t off = ((size_t)v - (size_t)g->mainthread->stack.p) / sizeof(StackValue);
  return &g->upcache[off % UPCACHE_N];
}

void luai_upcache_forget (lua_State *L, UpVal *uv) {
  UpVal **c = upcache_slot(L, uv->v.p);
  if (*c == uv)
    *c = NULL;
}

UpVal *luaF_findupval (lua_State *L, StkId level) {
  UpVal **pp = &L->openupval;
  UpVal **c = NULL;
  UpVal *p;
  lua_assert(isintwups(L) || L->openupval == NULL);
  if (L == G(L)->mainthread) {
    c = upcache_slot(L, s2v(level));
    if (*c != NULL && uplevel(*c) == level)
      return *c;
  }
  while ((p = *pp) != NULL && uplevel(p) >= level) {  /* search for it */
    lua_assert(!isdead(G(L), p));
    if (uplevel(p) == level)  /* corresponding upvalue? */
      break;
    pp = &p->u.open.next;
  }
  if (p == NULL || uplevel(p) != level)  /* not found: create it after 'pp' */
    p = newupval(L, level, pp);
  if (c != NULL)
    *c = p;
  return p;
}
";

/// Replaces `from` with `to` in `text`, exactly once.
fn patch(text: &mut String, file: &str, from: &str, to: &str) {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{file}: the patch expects exactly one `{from}` (another Lua version?)"
    );
    *text = text.replacen(from, to, 1);
}

fn main() {
    let src = find_sources();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("lua");
    std::fs::create_dir_all(&out).unwrap();
    println!("cargo:rerun-if-changed=csrc");
    let mut files = Vec::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".c") || name.ends_with(".h")) {
            continue;
        }
        // Not part of the library: the stand-alone interpreter and compiler.
        if name == "lua.c" || name == "luac.c" {
            continue;
        }
        let mut text = std::fs::read_to_string(e.path()).unwrap();
        match name.as_str() {
            "lstring.h" => patch(
                &mut text,
                &name,
                "#define eqshrstr(a,b)\tcheck_exp((a)->tt == LUA_VSHRSTR, (a) == (b))",
                "/* skynet-rs: bit 7 of 'marked' (TESTBIT, used only by ltests) flags an\n\
                 ** object shared by every state of the process (csrc/shared.c). Different\n\
                 ** short strings compare by contents only when one is shared: out of line\n\
                 ** and cold, so the hot callers keep their shape. */\n\
                 #define LUAI_SHAREDBIT\t7\n\
                 LUAI_FUNC int luaS_eqshared (TString *a, TString *b) __attribute__((cold));\n\
                 LUAI_FUNC TString *luai_sharedlookup (const char *str, size_t l, unsigned int h);\n\
                 LUAI_FUNC TString *luai_cstring (lua_State *L, const char *str);\n\
                 #define eqshrstr(a,b)\tcheck_exp((a)->tt == LUA_VSHRSTR, (a) == (b) || \\\n\
                 \x20 ((a)->hash == (b)->hash && \\\n\
                 \x20  (((a)->marked | (b)->marked) & (1 << LUAI_SHAREDBIT)) && luaS_eqshared(a, b)))",
            ),
            "lstring.c" => {
                patch(
                    &mut text,
                    &name,
                    "  /* else must create a new string */\n",
                    "  /* skynet-rs: a shared string of the same text, if any, keeps strings\n  \
                     ** of one text at one address in this state too (csrc/shared.c) */\n  \
                     ts = luai_sharedlookup(str, l, h);\n  \
                     if (ts != NULL)\n    return ts;\n  \
                     /* else must create a new string */\n",
                );
                patch(
                    &mut text,
                    &name,
                    "  p[0] = luaS_newlstr(L, str, strlen(str));\n",
                    "  p[0] = luai_cstring(L, str);  /* skynet-rs: csrc/shared.c */\n",
                );
            }
            "lstate.h" => patch(
                &mut text,
                &name,
                "  void *ud_warn;         /* auxiliary data to 'warnf' */\n} global_State;",
                "  void *ud_warn;         /* auxiliary data to 'warnf' */\n  \
                 struct UpVal *upcache[64];  /* skynet-rs: open upvalues by slot (lfunc.c) */\n\
                 } global_State;",
            ),
            "lstate.c" => patch(
                &mut text,
                &name,
                "  g->mainthread = L;\n",
                "  g->mainthread = L;\n  memset(g->upcache, 0, sizeof(g->upcache));  /* skynet-rs */\n",
            ),
            "lfunc.h" => patch(
                &mut text,
                &name,
                "LUAI_FUNC UpVal *luaF_findupval (lua_State *L, StkId level);\n",
                "LUAI_FUNC UpVal *luaF_findupval (lua_State *L, StkId level);\n\
                 LUAI_FUNC void luai_upcache_forget (lua_State *L, UpVal *uv);  /* skynet-rs */\n",
            ),
            "lfunc.c" => {
                patch(&mut text, &name, FINDUPVAL, FINDUPVAL_CACHED);
                patch(
                    &mut text,
                    &name,
                    "    luaF_unlinkupval(uv);  /* remove upvalue from 'openupval' list */\n",
                    "    luai_upcache_forget(L, uv);  /* skynet-rs */\n    \
                     luaF_unlinkupval(uv);  /* remove upvalue from 'openupval' list */\n",
                );
            }
            "lgc.c" => {
                patch(
                    &mut text,
                    &name,
                    "  lua_assert(g->allgc == o);  /* object must be 1st in 'allgc' list! */\n",
                    "  if (testbit(o->marked, LUAI_SHAREDBIT))  /* skynet-rs: already immortal */\n    \
                     return;\n  \
                     lua_assert(g->allgc == o);  /* object must be 1st in 'allgc' list! */\n",
                );
                patch(
                    &mut text,
                    &name,
                    "  if (upisopen(uv))\n    luaF_unlinkupval(uv);\n",
                    "  if (upisopen(uv)) {\n    luai_upcache_forget(L, uv);  /* skynet-rs */\n    \
                     luaF_unlinkupval(uv);\n  }\n",
                );
            }
            "ltable.c" => patch(
                &mut text,
                &name,
                "    case ctb(LUA_VLNGSTR):\n      return luaS_eqlngstr(tsvalue(k1), keystrval(n2));",
                "    case ctb(LUA_VSHRSTR):  /* skynet-rs: may be a shared string */\n      \
                 return eqshrstr(tsvalue(k1), keystrval(n2));\n    \
                 case ctb(LUA_VLNGSTR):\n      return luaS_eqlngstr(tsvalue(k1), keystrval(n2));",
            ),
            _ => {}
        }
        let dest = out.join(&name);
        if std::fs::read_to_string(&dest).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&dest, &text).unwrap();
        }
        if name.ends_with(".c") {
            files.push(dest);
        }
    }
    files.sort();
    let mut cc = cc::Build::new();
    cc.warnings(false)
        .include(&out)
        .define("LUA_COMPAT_5_3", None)
        .define("luai_makeseed(L)", "((unsigned int)(size_t)&lua_newstate)")
        .flag_if_supported("-fno-common")
        .files(&files)
        .file("csrc/shared.c");
    let target = std::env::var("TARGET").unwrap();
    if target.contains("linux") || target.contains("bsd") {
        cc.define("LUA_USE_LINUX", None);
    } else if target.contains("apple") {
        cc.define("LUA_USE_MACOSX", None);
    } else {
        cc.define("LUA_USE_POSIX", None);
    }
    if std::env::var("PROFILE").as_deref() == Ok("debug") {
        cc.define("LUA_USE_APICHECK", None);
    }
    cc.compile("lua54skynet");
    println!("cargo:include={}", out.display());
}
