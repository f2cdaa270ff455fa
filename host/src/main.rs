//! The `taskbox` binary: parse the command line and hand off to [`taskbox::cli::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    taskbox::cli::main()
}
