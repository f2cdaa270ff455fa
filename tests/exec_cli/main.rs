//! `taskbox exec` end to end: the real binary, real guests built from source, asserting stdout,
//! stderr and the documented exit code of each outcome.

use std::process::{Command, Output};

use taskbox_tests::guests::guest_path;
use taskbox_tests::taskbox_bin;

fn exec(args: &[&str]) -> Output {
    exec_with_env(args, &[])
}

/// `taskbox exec` with extra environment variables.
fn exec_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(taskbox_bin())
        .arg("exec")
        .args(args)
        .env("TASKBOX_CACHE_DIR", cache.path())
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("taskbox runs")
}

fn hostile() -> String {
    guest_path("taskbox_guest_hostile").display().to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn builtin_chunking_runs_from_the_binary() {
    let out = exec(&[
        "chunking",
        "--task",
        "chunking.split",
        "--args",
        r#"["some text"]"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let text = value.to_string();
    assert!(text.contains("some text"), "{text}");
}

#[test]
fn success_prints_the_output_json_and_exits_zero() {
    let out = exec(&[&hostile(), "--args", r#"["ok"]"#]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#""ok""#);
}

#[test]
fn each_failure_kind_has_its_exit_code() {
    let h = hostile();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--args", r#"["reject",0,"x"]"#], 3, "Reject"),
        (&["--args", r#"["fail"]"#], 4, "Fail"),
        (&["--args", r#"["retry", 10]"#], 5, "Retry"),
        (
            &["--args", r#"["spin"]"#, "--fuel", "100000000"],
            10,
            "OutOfFuel",
        ),
        (
            &["--args", r#"["alloc", 100000000]"#, "--memory", "32MiB"],
            11,
            "MemoryLimit",
        ),
        (
            &["--args", r#"["spin"]"#, "--fuel", "0", "--timeout", "300ms"],
            12,
            "Timeout",
        ),
        (&["--args", r#"["recurse"]"#], 13, "StackOverflow"),
        (&["--args", r#"["panic"]"#], 14, "Trap"),
        (
            &["--args", r#"["output", 100000]"#, "--max-output", "1KiB"],
            15,
            "OutputTooLarge",
        ),
        (
            &["--args", r#"["ok", 0, "long input"]"#, "--max-input", "10"],
            18,
            "InputTooLarge",
        ),
    ];
    for (args, code, kind) in cases {
        let mut full = vec![h.as_str()];
        full.extend_from_slice(args);
        let out = exec(&full);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(&format!("error: {kind}:")), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "nothing on stdout on failure");
    }
}

#[test]
fn reject_for_a_bad_argument_names_it() {
    let out = exec(&[
        &hostile(),
        "--args",
        r#"["ok"]"#,
        "--kwargs",
        r#"{"colour": 1}"#,
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("unexpected keyword argument 'colour'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn trap_prints_the_wasm_backtrace() {
    let out = exec(&[&hostile(), "--args", r#"["trap"]"#]);
    assert_eq!(out.status.code(), Some(14));
    assert!(stderr(&out).contains("wasm backtrace"), "{}", stderr(&out));
}

#[test]
fn wrong_world_version_exits_with_invalid_component() {
    let path = guest_path("taskbox_guest_wrong_version")
        .display()
        .to_string();
    let out = exec(&[&path]);
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("taskbox:task@0.2.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn directories_and_json_files_are_granted_by_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "from the host").unwrap();
    let args_file = dir.path().join("args.json");
    std::fs::write(&args_file, r#"["read_file", 0, "/in/note.txt"]"#).unwrap();
    let grant = format!("{}:/in:ro", dir.path().display());
    let at_file = format!("@{}", args_file.display());
    let out = exec(&[&hostile(), "--dir", &grant, "--args", &at_file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#""from the host""#);
}

#[test]
fn setup_errors_name_what_is_wrong() {
    let out = exec(&["no-such-thing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("'no-such-thing' is neither a component file nor a built-in"),
        "{}",
        stderr(&out)
    );
    let out = exec(&[&hostile(), "--args", "[not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--args is not valid JSON"),
        "{}",
        stderr(&out)
    );
    let out = exec(&[&hostile(), "--task", "nope"]);
    assert!(
        stderr(&out).contains("does not serve task 'nope'"),
        "{}",
        stderr(&out)
    );
    let out = exec(&[&hostile(), "--args", r#"["ok"]"#, "--keep-resident", "lots"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("--keep-resident") && stderr(&out).contains("'lots' is not a size"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn keep_resident_is_a_flag_and_the_workers_variable() {
    // The setting only changes speed: the task runs the same with any amount kept resident.
    let out = exec(&[&hostile(), "--args", r#"["ok"]"#, "--keep-resident", "2MiB"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#""ok""#);
    let ok = [hostile(), "--args".into(), r#"["ok"]"#.into()];
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    let out = exec_with_env(&ok, &[("TASKBOX_KEEP_RESIDENT", "0")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = exec_with_env(&ok, &[("TASKBOX_KEEP_RESIDENT", "a lot")]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a bad TASKBOX_KEEP_RESIDENT is refused"
    );
    assert!(
        stderr(&out).contains("'a lot' is not a size"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Command::new(taskbox_bin())
        .args(["exec", "--help"])
        .output()
        .unwrap();
    let help = stdout(&out);
    for needle in [
        "10  OutOfFuel",
        "11  MemoryLimit",
        "12  Timeout",
        "14  Trap",
        "17  InvalidComponent",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}
