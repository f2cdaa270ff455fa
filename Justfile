# taskbox task runner. `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Every wasm32-wasip2 crate: built-in plugins, then the guests the tests drive.
plugins := "taskbox-plugin-extract taskbox-plugin-chunking taskbox-plugin-indexing taskbox-plugin-mail taskbox-plugin-retention"
guests := "taskbox-guest-hostile taskbox-guest-noop taskbox-guest-wrong-version taskbox-guest-cpu taskbox-guest-minimal taskbox-guest-no-export taskbox-guest-unknown-import taskbox-guest-trap-on-load taskbox-guest-versioned"

# List the recipes.
[group('help')]
default:
    @just --list

# Build every component (built-ins and test guests) for wasm32-wasip2.
[group('build')]
build-wasm:
    # The versioned test guest twice: as version 2 (kept under another name), then version 1.
    TASKBOX_GUEST_VERSION=2 cargo build --target wasm32-wasip2 --profile guest -p taskbox-guest-versioned
    cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/guest/taskbox_guest_versioned.wasm" "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/guest/taskbox_guest_versioned_v2.wasm"
    cargo build --target wasm32-wasip2 --profile guest {{ prepend('-p ', plugins) }} {{ prepend('-p ', guests) }}

# Build the release `taskbox` binary with the built-in components embedded.
[group('build')]
build: build-wasm
    cargo build --release -p taskbox
    @echo "built target/release/taskbox"

# Check formatting, lint, then run every test including the sandbox conformance suite.
[group('test')]
test: build-wasm lint test-fast

# Create target/celery-venv with a real Celery 5 from PyPI, for the interop tests.
[group('test')]
venv:
    #!/usr/bin/env bash
    set -euo pipefail
    venv="${CARGO_TARGET_DIR:-target}/celery-venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import celery, redis' 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'celery[redis]==5.6.3' 'aiosmtpd==1.4.6'
    fi

# Run the tests without the lint step (a quicker local loop).
[group('test')]
test-fast: build-wasm venv
    cargo build -p taskbox
    cargo test --workspace --exclude taskbox-guest-hostile --exclude taskbox-guest-noop --exclude taskbox-guest-wrong-version --exclude taskbox-guest-cpu --exclude taskbox-guest-minimal --exclude taskbox-guest-no-export --exclude taskbox-guest-unknown-import --exclude taskbox-guest-trap-on-load --exclude taskbox-guest-versioned

# Format check and clippy with warnings denied (host side and wasm side).
[group('test')]
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --exclude taskbox-guest-hostile --exclude taskbox-guest-noop --exclude taskbox-guest-wrong-version --exclude taskbox-guest-cpu --exclude taskbox-guest-minimal --exclude taskbox-guest-no-export --exclude taskbox-guest-unknown-import --exclude taskbox-guest-trap-on-load --exclude taskbox-guest-versioned -- -D warnings
    cargo clippy --target wasm32-wasip2 --profile guest {{ prepend('-p ', plugins) }} {{ prepend('-p ', guests) }} -- -D warnings

# Format the code.
[group('dev')]
fmt:
    cargo fmt --all

# Start a worker against Redis, chunk the example documents through it, contain hostile tasks.
[group('demo')]
demo: build
    ./examples/demo.sh target/release/taskbox

# Build the third-party `keywords` plugin (examples/keywords), run it with `taskbox exec`, install
# it into a running worker with `taskbox plugin add`, and send it tasks (see PLUGIN_GUIDE.md).
[group('demo')]
example: build
    ./examples/example.sh target/release/taskbox

# Measure sandbox overhead, guest CPU vs native, taskbox vs Celery on one Redis, and the document pipeline; writes BENCHMARKS.md.
[group('bench')]
bench: build venv
    # cargo runs benches in tests/, so the section paths are passed absolute.
    cargo bench -p taskbox-tests --bench sandbox -- --out {{ justfile_directory() }}/target/bench/sandbox.md
    cargo bench -p taskbox-tests --bench e2e -- --out {{ justfile_directory() }}/target/bench/e2e.md
    cargo bench -p taskbox-tests --bench pipeline -- --out {{ justfile_directory() }}/target/bench/pipeline.md
    ./examples/assemble-benchmarks.sh "just bench" target/bench/sandbox.md target/bench/e2e.md target/bench/pipeline.md > BENCHMARKS.md
    @echo "wrote BENCHMARKS.md"
