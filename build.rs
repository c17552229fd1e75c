//! Embeds the Lua framework (the whole `skynet/` tree: `skynet/lualib`, `skynet/service`)
//! into the binaries, as the fallback used when a config's paths do not lead to our Lua
//! files. Files on disk always win. Embedded names drop the `skynet/` prefix
//! (`lualib/skynet.lua`, `service/launcher.lua`). The sample game server's own Lua
//! (top-level `lualib/`, `service/`) is an application and is never embedded.

use std::fmt::Write as _;
use std::path::Path;

fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = format!("{}/{}", prefix, e.file_name().to_string_lossy());
        if path.is_dir() {
            collect(&path, &name, out);
        } else if name.ends_with(".lua") {
            out.push((name, path.canonicalize().unwrap().display().to_string()));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("skynet");
    let mut files = Vec::new();
    for top in ["lualib", "service"] {
        collect(&root.join(top), top, &mut files);
    }
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        writeln!(code, "    ({name:?}, include_bytes!({path:?})),").unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_lua.rs");
    std::fs::write(out, code).unwrap();
}
