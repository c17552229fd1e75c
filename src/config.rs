//! Loading a skynet config file.
//!
//! The file is Lua source run once in a throw-away state whose global table becomes the
//! config (every global assignment is an entry; only `include` is visible). Before
//! compiling, every `$NAME` is replaced by the environment variable NAME. `include`
//! paths resolve relative to the including file's directory. Every entry is stored as a
//! string in [`crate::env`]; tables/functions are rejected naming the key.

use mlua::{Lua, Table, Value};
use std::cell::RefCell;
use std::rc::Rc;

/// A config error, printed to stderr by `main` before exiting with status 1.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replace each `$NAME` (`[A-Za-z0-9_]+`) by the environment variable's value.
pub fn substitute_env(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start {
                let name = &text[start..end];
                let value = lookup(name).ok_or_else(|| format!("os.getenv() failed: {name}"))?;
                out.push_str(&text[copied..i]);
                out.push_str(&value);
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

/// Load `path` and return its entries as (key, string value) pairs.
pub fn load(path: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let lua = Lua::new();
    let env: Table = lua.create_table().map_err(lua_err)?;
    let current_dir = Rc::new(RefCell::new(String::from("./")));
    let include = {
        let env = env.clone();
        let current_dir = current_dir.clone();
        lua.create_function(move |lua, filename: String| {
            include_file(lua, &env, &current_dir, &filename)
        })
        .map_err(lua_err)?
    };
    let meta = lua.create_table().map_err(lua_err)?;
    let index = lua.create_table().map_err(lua_err)?;
    index.set("include", include.clone()).map_err(lua_err)?;
    meta.set("__index", index).map_err(lua_err)?;
    env.set_metatable(Some(meta)).map_err(lua_err)?;
    include.call::<()>(path.to_string()).map_err(lua_err)?;

    let tostring: mlua::Function = lua.globals().get("tostring").map_err(lua_err)?;
    let mut entries = Vec::new();
    for pair in env.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(lua_err)?;
        let key = match k {
            Value::String(s) => s.to_string_lossy(),
            _ => return Err(ConfigError("Invalid config table".into())),
        };
        let value = match v {
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Number(_) => tostring.call::<String>(v).map_err(lua_err)?,
            Value::String(s) => s.to_string_lossy(),
            _ => return Err(ConfigError(format!("Invalid config table key = {key}"))),
        };
        entries.push((key, value));
    }
    entries.sort();
    Ok(entries)
}

fn include_file(
    lua: &Lua,
    env: &Table,
    current_dir: &Rc<RefCell<String>>,
    filename: &str,
) -> mlua::Result<()> {
    let previous = current_dir.borrow().clone();
    let (dir, name) = match filename.rfind('/') {
        Some(p) => (&filename[..=p], &filename[p + 1..]),
        None => ("", filename),
    };
    let base = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{previous}{dir}")
    };
    let full = format!("{base}{name}");
    let text = std::fs::read_to_string(&full)
        .map_err(|e| mlua::Error::runtime(format!("cannot open {full}: {e}")))?;
    let text = substitute_env(&text, |n| std::env::var(n).ok()).map_err(mlua::Error::runtime)?;
    *current_dir.borrow_mut() = base;
    let result = lua
        .load(text.as_str())
        .set_name(format!("@{full}"))
        .set_environment(env.clone())
        .exec();
    *current_dir.borrow_mut() = previous;
    result
}

fn lua_err(e: mlua::Error) -> ConfigError {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_err((*cause).clone()),
        mlua::Error::RuntimeError(s) | mlua::Error::SyntaxError { message: s, .. } => {
            ConfigError(s)
        }
        other => ConfigError(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("skynet-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn get<'a>(e: &'a [(String, String)], k: &str) -> Option<&'a str> {
        e.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn substitutes_env_vars_and_reports_missing() {
        let r = substitute_env("a=$HOME_X..$Y $ z", |n| match n {
            "HOME_X" => Some("h".into()),
            "Y" => Some("y".into()),
            _ => None,
        });
        assert_eq!(r.unwrap(), "a=h..y $ z");
        let e = substitute_env("x = $NOPE_VAR", |_| None).unwrap_err();
        assert_eq!(e, "os.getenv() failed: NOPE_VAR");
    }

    #[test]
    fn values_become_strings_and_helpers_are_entries() {
        let d = tmp("values");
        let p = write(
            &d,
            "config",
            "root = \"./\"\nthread = 4\nratio = 1.5\nflag = true\nno = false\nlua_path = root .. \"lualib/?.lua\"\nunset = nil\n",
        );
        let e = load(&p).unwrap();
        assert_eq!(get(&e, "thread"), Some("4"));
        assert_eq!(get(&e, "ratio"), Some("1.5"));
        assert_eq!(get(&e, "flag"), Some("true"));
        assert_eq!(get(&e, "no"), Some("false"));
        assert_eq!(get(&e, "root"), Some("./"));
        assert_eq!(get(&e, "lua_path"), Some("./lualib/?.lua"));
        assert_eq!(get(&e, "unset"), None);
    }

    #[test]
    fn include_is_relative_to_including_file_and_stdlib_is_hidden() {
        let d = tmp("include");
        write(
            &d,
            "sub/config.path",
            "root = \"R\"\ninner = include ~= nil\nnostd = (string == nil) and (print == nil)\n",
        );
        let p = write(
            &d,
            "config",
            "include \"sub/config.path\"\ncpath = root .. \"c\"\n",
        );
        let e = load(&p).unwrap();
        assert_eq!(get(&e, "cpath"), Some("Rc"));
        assert_eq!(get(&e, "nostd"), Some("true"));
    }

    #[test]
    fn errors_name_the_file_line_or_key() {
        let d = tmp("errors");
        let p = write(&d, "bad", "thread = = 3\n");
        let e = load(&p).unwrap_err().0;
        assert!(e.contains("bad:1:"), "{e}");
        let p = write(&d, "tbl", "x = {}\n");
        assert_eq!(load(&p).unwrap_err().0, "Invalid config table key = x");
        let e = load(&d.join("missing").display().to_string())
            .unwrap_err()
            .0;
        assert!(e.contains("missing"), "{e}");
    }
}
