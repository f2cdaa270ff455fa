//! The built-in components (extract, chunking, indexing, mail, retention), embedded into the
//! binary at build time so an operator deploys one file.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The wasm bytes of built-in `name`, or an error that says whether the name is unknown or the
/// component was simply not built before the host.
pub fn get(name: &str) -> anyhow::Result<&'static [u8]> {
    match BUILTINS.iter().find(|(n, _)| *n == name) {
        Some((_, Some(bytes))) => Ok(bytes),
        Some((_, None)) => anyhow::bail!(
            "the built-in component '{name}' is not embedded in this build of taskbox; run `just build` (it builds the components before the host)"
        ),
        None => anyhow::bail!(
            "'{name}' is not a built-in component (built-ins: {})",
            names().join(", ")
        ),
    }
}

/// Names of every built-in.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// Whether `name` names a built-in (embedded or not).
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(n, _)| *n == name)
}
