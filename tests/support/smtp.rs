//! A real SMTP server for mail tests: `tests/smtp_server.py` (aiosmtpd, from the
//! `target/celery-venv` that `just venv` builds) on a loopback port, recording every accepted
//! message as JSON in a temp dir, optionally refusing the first commands with 451 or 550.
//! Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Which SMTP command the server refuses, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refuse {
    /// How many commands to refuse before accepting.
    pub count: u32,
    /// `"rcpt"` or `"data"`.
    pub at: &'static str,
    /// `"451"` (try again later) or `"550"` (refused for good).
    pub code: &'static str,
}

/// One message the server accepted, decoded by Python's `email` package.
#[derive(Debug, Clone)]
pub struct Received {
    /// The whole record (`mail_from`, `rcpt_tos`, `raw`, `subject`, `from`, `to`,
    /// `message_id`, `text`, `html`).
    pub json: Value,
}

impl Received {
    /// A string field of the record (empty when absent or null).
    pub fn field(&self, name: &str) -> &str {
        self.json[name].as_str().unwrap_or_default()
    }
}

/// A running `smtp_server.py`.
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts the server on `port` (see [`crate::redis::free_port`]) and waits until it
    /// accepts connections.
    pub fn start(port: u16, refuse: Option<Refuse>) -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir for smtp server");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script)
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path().join("mail"));
        if let Some(r) = refuse {
            cmd.args(["--fail", &r.count.to_string()])
                .args(["--fail-at", r.at])
                .args(["--fail-with", r.code]);
        }
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", script.display()));
        let server = SmtpServer {
            child: Some(child),
            port,
            dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp_server.py did not listen on port {} within 20s:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail")) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("msg-") && n.ends_with(".json"))
            })
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("message file is readable");
                Received {
                    json: serde_json::from_str(&text).expect("message file is JSON"),
                }
            })
            .collect()
    }

    /// The commands refused so far, one line each (`"data 451 4.3.0 try again later"`).
    pub fn refusals(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("mail").join("refusals.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The venv Python with aiosmtpd importable. `just venv` installs it; a venv made before
/// aiosmtpd was added gets it here with pip (once per test process).
pub fn python() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let py = crate::target_dir()
                .join("celery-venv")
                .join("bin")
                .join("python");
            if !py.exists() {
                return Err(format!(
                    "{} is missing: run `just venv` (it installs Celery and aiosmtpd from PyPI)",
                    py.display()
                ));
            }
            let has_aiosmtpd = |py: &Path| {
                Command::new(py)
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has_aiosmtpd(&py) {
                let installed = Command::new(&py)
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .arg("aiosmtpd==1.4.6")
                    .status()
                    .is_ok_and(|s| s.success());
                if !installed || !has_aiosmtpd(&py) {
                    return Err(format!(
                        "aiosmtpd is not importable by {} and pip could not install it: run `just venv`",
                        py.display()
                    ));
                }
            }
            Ok(py)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}
