//! The one `Linker` of a process: WASI 0.2 plus every taskbox capability, in one list. Which
//! capabilities a given plugin may actually use is decided per plugin by its grants, not here.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use super::bindings::Plugin;
use super::state::HostState;

/// Interfaces outside `taskbox:task` that a component may import: what Rust's standard
/// library pulls in on `wasm32-wasip2`. Sockets link but the WASI context grants no network.
pub const WASI_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Builds the linker shared by every component.
pub fn build(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)?;
    Ok(linker)
}

// `types` holds only type definitions; the generated trait has no methods.
impl super::bindings::taskbox::task::types::Host for HostState {}
