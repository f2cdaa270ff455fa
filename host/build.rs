//! Embeds the built-in components into the `taskbox` binary when they have been built.
//!
//! `just build` compiles `plugins/*` for `wasm32-wasip2` into `<target>/wasm32-wasip2/guest/`
//! before building the host; this script finds them there and generates an `include_bytes!`
//! table. A plain `cargo build` without them still succeeds: the binary then says which
//! built-ins are missing and how to build them.

use std::path::PathBuf;

const BUILTINS: &[&str] = &["extract", "chunking", "indexing", "mail", "retention"];

fn main() {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let guest_dir = match std::env::var_os("TASKBOX_BUILTINS_DIR") {
        Some(dir) => PathBuf::from(dir),
        // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
        None => out_dir
            .ancestors()
            .nth(4)
            .map(|target| target.join("wasm32-wasip2").join("guest"))
            .unwrap_or_default(),
    };
    println!("cargo:rerun-if-env-changed=TASKBOX_BUILTINS_DIR");
    let mut entries = String::new();
    for name in BUILTINS {
        let path = guest_dir.join(format!("taskbox_plugin_{name}.wasm"));
        println!("cargo:rerun-if-changed={}", path.display());
        if path.exists() {
            entries.push_str(&format!(
                "    ({name:?}, Some(include_bytes!({:?}).as_slice())),\n",
                path.display().to_string()
            ));
        } else {
            entries.push_str(&format!("    ({name:?}, None),\n"));
        }
    }
    let code = format!(
        "/// Built-in components: name and wasm bytes (`None` when not built before the host).\n\
         pub static BUILTINS: &[(&str, Option<&[u8]>)] = &[\n{entries}];\n"
    );
    std::fs::write(out_dir.join("builtins.rs"), code).expect("OUT_DIR is writable");
}
