//! Third-party plugins end to end: a real worker watching a plugin directory, components built
//! from source (the `versioned` guest as version 1 and 2, the hostile guest), installed with
//! the real `taskbox plugin` command, tasks sent over a private Redis.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use redis::Commands as _;
use serde_json::{Value, json};
use taskbox_tests::guests::guest_path;
use taskbox_tests::redis::RedisServer;
use taskbox_tests::tasks::{meta, send, wait_final, wait_success, wait_until};
use taskbox_tests::worker::WorkerProcess;

const LONG: Duration = Duration::from_secs(30);

/// The operator's grant for the versioned guest (it imports kv; without a grant a plugin gets
/// only log and progress).
const GRANT: &str = "\n[plugins.versioned]\ncapabilities = [\"log\", \"kv\"]\n";

fn sha256(path: &Path) -> String {
    taskbox::runtime::digest(&std::fs::read(path).expect("read component"))
}

fn v1() -> PathBuf {
    guest_path("taskbox_guest_versioned")
}

fn v2() -> PathBuf {
    guest_path("taskbox_guest_versioned_v2")
}

/// A manifest for the versioned guest pinned to `component`'s digest.
fn versioned_manifest(
    dir: &Path,
    file: &str,
    version: &str,
    component: &Path,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"
name = "versioned"
version = "{version}"
sha256 = "{sha}"

[[tasks]]
name = "versioned.info"
queue = "plugin"

[[tasks]]
name = "versioned.kv_set"
queue = "plugin"

[[tasks]]
name = "versioned.read_file"
queue = "plugin"

[capabilities]
log = true
kv = true
{extra}
"#,
        sha = sha256(component)
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// A worker configuration: a plugin directory polled quickly, `extra` appended.
fn config(dir: &Path, plugins: &Path, extra: &str) -> PathBuf {
    let cache = taskbox_tests::target_dir().join("test-component-cache");
    let text = format!(
        r#"
[worker]
heartbeat_interval = "300ms"
dead_after = "2s"
delayed_poll = "20ms"
shutdown_grace = "5s"
cache_dir = "{cache}"
plugins_dir = "{plugins}"
plugin_poll = "300ms"
queues = ["plugin", "dataset"]
{extra}
"#,
        cache = cache.display(),
        plugins = plugins.display(),
    );
    let path = dir.join("taskbox.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs `taskbox plugin ...` with the test configuration.
fn plugin_cmd(config: &Path, redis: &RedisServer, args: &[&str]) -> Output {
    Command::new(taskbox_tests::taskbox_bin())
        .arg("plugin")
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--broker")
        .arg(redis.url())
        .env("LOG_LEVEL", "warn")
        .env_remove("CELERY_BROKER_URL")
        .output()
        .expect("run taskbox plugin")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The plugin status the running worker published for `name`.
fn worker_status(config: &Path, redis: &RedisServer, name: &str) -> Value {
    let out = plugin_cmd(config, redis, &["list", "--json"]);
    assert!(out.status.success(), "plugin list failed: {}", text(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("plugin list --json is JSON");
    let workers = listed["workers"]["Ok"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    workers
        .iter()
        .flat_map(|w| w["plugins"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == name)
        .unwrap_or(Value::Null)
}

fn m_path(dir: &Path) -> PathBuf {
    dir.join("m.toml")
}

#[test]
fn plugins_are_added_replaced_while_running_and_a_corrupt_replacement_is_refused() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let cfg = config(tmp.path(), &plugins, GRANT);
    let worker = WorkerProcess::start(&redis, &cfg, &[]);

    // Added to the running worker: its task runs without a restart.
    let m1 = versioned_manifest(tmp.path(), "v1.toml", "1.0.0", &v1(), "");
    let out = plugin_cmd(
        &cfg,
        &redis,
        &[
            "add",
            v1().to_str().unwrap(),
            "--manifest",
            m1.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "plugin add v1: {}", text(&out));
    let id = send(&redis, "versioned.info", json!([]), json!({}), "plugin");
    assert_eq!(wait_success(&redis, &id, LONG), json!({"version": "1"}));

    // Replaced while a long task of version 1 runs: both finish, each on its own version.
    let long = send(
        &redis,
        "versioned.info",
        json!([]),
        json!({"sleep_ms": 4000}),
        "plugin",
    );
    wait_until("the long task to start", LONG, || {
        redis.conn().hlen::<_, u64>("unacked").unwrap_or(0) > 0
    });
    let m2 = versioned_manifest(tmp.path(), "v2.toml", "2.0.0", &v2(), "");
    let out = plugin_cmd(
        &cfg,
        &redis,
        &[
            "add",
            v2().to_str().unwrap(),
            "--manifest",
            m2.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "plugin add v2: {}", text(&out));
    worker.wait_for_log("plugin replaced", LONG);
    let short = send(&redis, "versioned.info", json!([]), json!({}), "plugin");
    assert_eq!(wait_success(&redis, &short, LONG), json!({"version": "2"}));
    assert_eq!(wait_success(&redis, &long, LONG), json!({"version": "1"}));

    // A corrupted replacement (bytes that do not match the pinned digest) is refused; the
    // old version keeps serving, and `plugin list` says why.
    let installed = plugins.join("versioned");
    std::fs::copy(v1(), installed.join("versioned.wasm")).unwrap();
    worker.wait_for_log("new version refused", LONG);
    let again = send(&redis, "versioned.info", json!([]), json!({}), "plugin");
    assert_eq!(wait_success(&redis, &again, LONG), json!({"version": "2"}));
    wait_until("the worker to publish the stale state", LONG, || {
        worker_status(&cfg, &redis, "versioned")["state"] == "stale"
    });
    let status = worker_status(&cfg, &redis, "versioned");
    assert_eq!(status["version"], "2.0.0", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or("")
            .contains("digest mismatch"),
        "{status}"
    );

    // `plugin add` itself refuses the mismatch before touching the directory.
    let out = plugin_cmd(
        &cfg,
        &redis,
        &[
            "add",
            v1().to_str().unwrap(),
            "--manifest",
            m2.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("digest mismatch"), "{}", text(&out));
}

#[test]
fn a_plugin_requesting_an_ungranted_directory_is_refused() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let wants_dir = r#"dirs = [{ path = "/data", access = "ro" }]"#;
    let manifest = versioned_manifest(tmp.path(), "m.toml", "1.0.0", &v1(), wants_dir);

    let ungranted = config(tmp.path(), &plugins, "");
    let out = plugin_cmd(
        &ungranted,
        &redis,
        &[
            "verify",
            v1().to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("/data") && text(&out).contains("did not grant"),
        "{}",
        text(&out)
    );
    let out = plugin_cmd(
        &ungranted,
        &redis,
        &[
            "add",
            v1().to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "add must refuse: {}", text(&out));
    assert!(
        !plugins.join("versioned").exists(),
        "a refused plugin must not be installed"
    );

    // Without a kv grant, a component importing kv is refused at load, the import named.
    let no_dir = versioned_manifest(tmp.path(), "plain.toml", "1.0.0", &v1(), "");
    let out = plugin_cmd(
        &ungranted,
        &redis,
        &[
            "verify",
            v1().to_str().unwrap(),
            "--manifest",
            no_dir.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("taskbox:task/kv"), "{}", text(&out));

    // `plugin info` shows what the component is.
    let out = plugin_cmd(&ungranted, &redis, &["info", v1().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let info = text(&out);
    assert!(info.contains(&sha256(&v1())), "{info}");
    assert!(info.contains("taskbox:task@0.1.0"), "{info}");
    assert!(
        info.contains("versioned.info") && info.contains("kv"),
        "{info}"
    );
    // The first load above compiled it or found it cached; a second one must come from the
    // cache and say so.
    let out = plugin_cmd(&ungranted, &redis, &["info", v1().to_str().unwrap()]);
    let info = text(&out);
    assert!(
        info.lines()
            .any(|l| l.starts_with("load:") && l.ends_with("(compiled component from the cache)")),
        "{info}"
    );

    let granted_dir = tmp.path().join("granted");
    std::fs::create_dir(&granted_dir).unwrap();
    let granted = config(
        &granted_dir,
        &plugins,
        &format!(
            "\n[plugins.versioned]\ncapabilities = [\"log\", \"kv\"]\ndirs = [\"{}:/data:ro\"]\n",
            data.display()
        ),
    );
    let out = plugin_cmd(
        &granted,
        &redis,
        &[
            "verify",
            v1().to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("granted here: log, kv"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugins_cannot_reach_each_others_kv_keys_or_files() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    let dir_a = tmp.path().join("a");
    let dir_b = tmp.path().join("b");
    for d in [&plugins, &dir_a, &dir_b] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(dir_a.join("a.txt"), "hostile's own file").unwrap();
    std::fs::write(dir_b.join("secret.txt"), "versioned's secret").unwrap();

    // Installed by hand (as an operator copying files would), each with its own grant. The
    // hostile guest imports every capability; its operator grants only log and kv and chose
    // call-time enforcement, so it loads and the rest is refused when used.
    let install = |name: &str, component: &Path, manifest: String| {
        let dir = plugins.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(component, dir.join(format!("{name}.wasm"))).unwrap();
        std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    };
    let hostile = guest_path("taskbox_guest_hostile");
    install(
        "hostile",
        &hostile,
        format!(
            r#"
name = "hostile"
version = "1.0.0"
sha256 = "{}"
[[tasks]]
name = "hostile.run"
queue = "plugin"
[capabilities]
log = true
progress = true
kv = true
mail = true
queue = ["plugin"]
dirs = [{{ path = "/data", access = "ro" }}]
"#,
            sha256(&hostile)
        ),
    );
    let m = versioned_manifest(
        tmp.path(),
        m_path(tmp.path()).file_name().unwrap().to_str().unwrap(),
        "1.0.0",
        &v1(),
        r#"dirs = [{ path = "/data", access = "ro" }]"#,
    );
    install("versioned", &v1(), std::fs::read_to_string(m).unwrap());
    // The same component again under another name: its task is already served, so it is
    // refused and the first keeps serving.
    install(
        "zz-twin",
        &v1(),
        std::fs::read_to_string(m_path(tmp.path()))
            .unwrap()
            .replace("name = \"versioned\"", "name = \"zz-twin\""),
    );
    let cfg = config(
        tmp.path(),
        &plugins,
        &format!(
            r#"
[plugins.hostile]
capabilities = ["log", "kv"]
dirs = ["{a}:/data:ro"]
enforcement = "call"

[plugins.versioned]
capabilities = ["log", "kv"]
dirs = ["{b}:/data:ro"]

[plugins.zz-twin]
capabilities = ["log", "kv"]
dirs = ["{b}:/data:ro"]
"#,
            a = dir_a.display(),
            b = dir_b.display()
        ),
    );
    let _worker = WorkerProcess::start(&redis, &cfg, &[]);

    wait_until("the worker to publish its plugins", LONG, || {
        !worker_status(&cfg, &redis, "zz-twin").is_null()
    });
    let twin = worker_status(&cfg, &redis, "zz-twin");
    assert_eq!(twin["state"], "failed", "{twin}");
    assert!(
        twin["error"].as_str().unwrap().contains("served by both"),
        "{twin}"
    );

    // kv: the same key name in two plugins is two different keys.
    let id = send(
        &redis,
        "versioned.kv_set",
        json!(["secret", "s3cret"]),
        json!({}),
        "plugin",
    );
    wait_success(&redis, &id, LONG);
    let stored: Option<String> = redis.conn().hget("taskbox:kv:versioned", "secret").unwrap();
    assert_eq!(stored.as_deref(), Some("s3cret"));
    let id = send(
        &redis,
        "hostile.run",
        json!(["kv_get", 0, "secret"]),
        json!({}),
        "plugin",
    );
    assert_eq!(
        wait_success(&redis, &id, LONG),
        Value::Null,
        "hostile read versioned's key"
    );

    // Files: each sees only its own /data.
    let id = send(
        &redis,
        "versioned.read_file",
        json!(["/data/secret.txt"]),
        json!({}),
        "plugin",
    );
    assert_eq!(wait_success(&redis, &id, LONG), json!("versioned's secret"));
    let id = send(
        &redis,
        "hostile.run",
        json!(["read_file", 0, "/data/a.txt"]),
        json!({}),
        "plugin",
    );
    assert_eq!(wait_success(&redis, &id, LONG), json!("hostile's own file"));
    let id = send(
        &redis,
        "hostile.run",
        json!(["read_file", 0, "/data/secret.txt"]),
        json!({}),
        "plugin",
    );
    let failed = wait_final(&redis, &id, LONG);
    assert_eq!(failed["status"], "FAILURE", "{failed}");

    // An imported but ungranted capability fails when used.
    let id = send(
        &redis,
        "hostile.run",
        json!(["mail", 0, "x@example.com"]),
        json!({}),
        "plugin",
    );
    let failed = wait_final(&redis, &id, LONG);
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    assert_eq!(failed["result"]["exc_type"], "CapabilityDenied", "{failed}");
}

#[test]
fn a_removed_plugin_does_not_lose_queued_tasks() {
    let redis = RedisServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let cfg = config(
        tmp.path(),
        &plugins,
        &format!("unregistered_timeout = \"4s\"\n{GRANT}"),
    );
    let worker = WorkerProcess::start(&redis, &cfg, &[]);
    let m1 = versioned_manifest(tmp.path(), "v1.toml", "1.0.0", &v1(), "");
    let add = || {
        let out = plugin_cmd(
            &cfg,
            &redis,
            &[
                "add",
                v1().to_str().unwrap(),
                "--manifest",
                m1.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "plugin add: {}", text(&out));
    };
    add();
    let id = send(&redis, "versioned.info", json!([]), json!({}), "plugin");
    wait_success(&redis, &id, LONG);

    let out = plugin_cmd(&cfg, &redis, &["remove", "versioned"]);
    assert!(out.status.success(), "plugin remove: {}", text(&out));
    worker.wait_for_log("plugin removed", LONG);

    // Queued while no worker serves it: kept (returned for a worker that has the plugin), not
    // failed; once the plugin is back it runs.
    let queued = send(&redis, "versioned.info", json!([]), json!({}), "plugin");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(meta(&redis, &queued).is_none(), "task must wait, not fail");
    let waiting: u64 = redis.conn().zcard("taskbox:delayed").unwrap();
    let listed: u64 = redis.conn().llen("plugin").unwrap();
    let unacked: u64 = redis.conn().hlen("unacked").unwrap();
    assert!(
        waiting + listed + unacked >= 1,
        "the task vanished from Redis"
    );
    add();
    assert_eq!(wait_success(&redis, &queued, LONG), json!({"version": "1"}));

    // A task no worker ever serves is dead-lettered after the configured wait, with a reason.
    let orphan = send(&redis, "nobody.serves", json!([]), json!({}), "plugin");
    let failed = wait_final(&redis, &orphan, LONG);
    assert_eq!(failed["status"], "FAILURE");
    assert_eq!(failed["result"]["exc_type"], "NotRegistered", "{failed}");
    let dead: Vec<String> = redis.conn().lrange("taskbox:dead_letter", 0, -1).unwrap();
    assert!(
        dead.iter()
            .any(|d| d.contains("nobody.serves") && d.contains("not served by any worker")),
        "{dead:?}"
    );
}
