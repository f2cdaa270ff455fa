//! Entry resolution and its errors, the missed-occurrence policies, the message a periodic
//! task is sent as, and the `beat list` table, all without Redis.

use std::path::Path;

use super::*;
use crate::broker::message;
use crate::config::ConfigError;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn config(toml: &str) -> Config {
    Config::from_toml_str(toml, Path::new("taskbox.toml")).unwrap()
}

fn named<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

#[test]
fn the_default_schedule_resolves_with_two_entries_on() {
    let entries = entries(&Config::default()).unwrap();
    assert_eq!(entries.len(), 11);
    let on: Vec<&str> = entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        on,
        ["check_upgradable_plugin_task", "workflow_schedule_task"]
    );
    let poller = named(&entries, "workflow_schedule_task");
    assert_eq!(
        poller.task,
        "schedule.workflow_schedule_task.poll_workflow_schedules"
    );
    assert_eq!(poller.queue, "schedule_poller");
    assert_eq!(poller.schedule.to_string(), "every 1m");
    assert_eq!(poller.switch, Some("ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK"));
    assert_eq!(poller.missed, MissedPolicy::Once);
    let sweep = named(&entries, "retention-sweep");
    assert_eq!(
        (sweep.task.as_str(), sweep.queue.as_str()),
        ("retention.sweep", "retention")
    );
}

#[test]
fn a_schedule_entry_with_a_default_name_changes_only_what_it_sets() {
    let c = config(
        r#"
[beat.schedule.workflow_schedule_task]
enabled = false

[beat.schedule.clean_messages]
enabled = true
cron = "15 4 * * *"
timezone = "Europe/Berlin"
missed = "skip"
"#,
    );
    let entries = entries(&c).unwrap();
    let poller = named(&entries, "workflow_schedule_task");
    assert!(!poller.enabled);
    assert_eq!(poller.schedule.to_string(), "every 1m", "kept");
    let messages = named(&entries, "clean_messages");
    assert!(messages.enabled);
    assert_eq!(messages.task, "schedule.clean_messages.clean_messages");
    assert_eq!(
        messages.schedule.to_string(),
        "cron \"15 4 * * *\" Europe/Berlin"
    );
    assert_eq!(messages.missed, MissedPolicy::Skip);
}

#[test]
fn new_entries_take_their_queue_from_the_task_route() {
    let c = config(
        r#"
[tasks."reports.weekly"]
queue = "mail"

[beat.schedule.weekly-report]
task = "reports.weekly"
cron = "0 9 * * MON"
args = [1, "two"]
kwargs = { dry_run = true }
missed = "all"
max_catch_up = 3

[beat.schedule.sweep]
task = "retention.sweep"
every = "6h"
"#,
    );
    let entries = entries(&c).unwrap();
    let weekly = named(&entries, "weekly-report");
    assert_eq!(weekly.queue, "mail");
    assert_eq!(weekly.args, vec![Value::from(1), Value::from("two")]);
    assert_eq!(weekly.kwargs.get("dry_run"), Some(&Value::Bool(true)));
    assert_eq!((weekly.missed, weekly.max_catch_up), (MissedPolicy::All, 3));
    assert_eq!(weekly.switch, None);
    assert_eq!(named(&entries, "sweep").queue, "retention");
}

/// The configuration error for `toml`, as the operator sees it.
fn load_error(toml: &str) -> String {
    let mut c = config(toml);
    c.apply_flag("--broker", "redis://127.0.0.1:6379/0")
        .unwrap();
    let err: ConfigError = c.validate().unwrap_err();
    err.to_string()
}

#[test]
fn bad_entries_are_errors_that_name_the_entry() {
    let err =
        load_error("[beat.schedule.nightly]\ntask = \"t\"\ncron = \"0 25 * * *\"\nqueue = \"q\"\n");
    assert!(
        err.contains("beat.schedule.nightly.cron")
            && err.contains("\"25\"")
            && err.contains("hour"),
        "{err}"
    );
    assert!(err.contains("taskbox.toml"), "names the file: {err}");
    let err = load_error(
        "[beat.schedule.\"odd name\"]\ntask = \"t\"\nevery = \"often\"\nqueue = \"q\"\n",
    );
    assert!(
        err.contains("beat.schedule.\"odd name\".every") && err.contains("\"often\""),
        "{err}"
    );
    let err = load_error("[beat.schedule.x]\ntask = \"t\"\nqueue = \"q\"\n");
    assert!(
        err.contains("beat.schedule.x.cron") && err.contains("no schedule"),
        "{err}"
    );
    let err = load_error(
        "[beat.schedule.x]\ntask = \"t\"\nqueue = \"q\"\ncron = \"* * * * *\"\nevery = \"1m\"\n",
    );
    assert!(err.contains("both cron and every"), "{err}");
    let err = load_error("[beat.schedule.x]\ncron = \"* * * * *\"\n");
    assert!(
        err.contains("beat.schedule.x.task") && err.contains("no task"),
        "{err}"
    );
    let err = load_error("[beat.schedule.x]\ntask = \"unknown.task\"\nevery = \"1m\"\n");
    assert!(
        err.contains("beat.schedule.x.queue") && err.contains("no default queue"),
        "{err}"
    );
    let err = load_error(
        "[beat.schedule.x]\ntask = \"t\"\nqueue = \"q\"\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Atlantis\"\n",
    );
    assert!(
        err.contains("beat.schedule.x.timezone") && err.contains("Europe/Atlantis"),
        "{err}"
    );
    let err =
        load_error("[beat.schedule.x]\ntask = \"t\"\nqueue = \"two words\"\nevery = \"1m\"\n");
    assert!(
        err.contains("beat.schedule.x.queue") && err.contains("whitespace"),
        "{err}"
    );
    let err = load_error(
        "[beat.schedule.x]\ntask = \"t\"\nqueue = \"q\"\nevery = \"1m\"\nmissed = \"all\"\nmax_catch_up = 0\n",
    );
    assert!(err.contains("beat.schedule.x.max_catch_up"), "{err}");
    let err = Config::from_toml_str(
        "[beat.schedule.x]\ntask = \"t\"\nmissed = \"sometimes\"\n",
        Path::new("taskbox.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sometimes") && err.contains("beat.schedule.x.missed"),
        "{err}"
    );
    let err = load_error("[beat]\nlease = \"100ms\"\n");
    assert!(err.contains("beat.lease"), "{err}");
}

#[test]
fn dify_variables_switch_and_time_the_defaults() {
    let env = |name: &str| {
        match name {
            "ENABLE_CLEAN_MESSAGES" => Some("true"),
            "ENABLE_WORKFLOW_SCHEDULE_POLLER_TASK" => Some("false"),
            "ENABLE_DATASETS_QUEUE_MONITOR" => Some("1"),
            "QUEUE_MONITOR_INTERVAL" => Some("0"),
            "WORKFLOW_SCHEDULE_POLLER_INTERVAL" => Some("5"),
            "CELERY_BEAT_SCHEDULER_TIME" => Some("2"),
            "MARKETPLACE_ENABLED" => Some("false"),
            _ => None,
        }
        .map(str::to_string)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taskbox.toml");
    std::fs::write(&path, "").unwrap();
    let c = Config::load(Some(&path), &env).unwrap();
    let entries = entries(&c).unwrap();
    let on: Vec<&str> = entries
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(on, ["clean_messages", "datasets-queue-monitor"]);
    assert_eq!(
        named(&entries, "clean_messages").schedule.to_string(),
        "cron \"0 4 */2 * *\" UTC"
    );
    assert_eq!(
        named(&entries, "datasets-queue-monitor")
            .schedule
            .to_string(),
        "every 30m",
        "Dify reads QUEUE_MONITOR_INTERVAL=0 as 30"
    );
    assert_eq!(
        named(&entries, "workflow_schedule_task")
            .schedule
            .to_string(),
        "every 5m"
    );
    assert_eq!(
        c.source_of("beat.defaults.clean_messages").to_string(),
        "environment variable ENABLE_CLEAN_MESSAGES"
    );
    let bad = |name: &'static str, value: &'static str| {
        let env = move |n: &str| (n == name).then(|| value.to_string());
        Config::load(Some(&path), &env).unwrap_err().to_string()
    };
    let err = bad("ENABLE_CLEAN_MESSAGES", "perhaps");
    assert!(
        err.contains("ENABLE_CLEAN_MESSAGES") && err.contains("\"perhaps\""),
        "{err}"
    );
    let err = bad("CELERY_BEAT_SCHEDULER_TIME", "0");
    assert!(err.contains("beat.defaults.scheduler_days"), "{err}");
    let err = bad("WORKFLOW_SCHEDULE_POLLER_INTERVAL", "soon");
    assert!(err.contains("minutes"), "{err}");
}

#[test]
fn a_schedule_file_adds_entries_and_holds_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schedule.toml");
    std::fs::write(
        &file,
        "[beat.schedule.extra]\ntask = \"retention.sweep\"\nevery = \"1h\"\n",
    )
    .unwrap();
    let mut c = Config::default();
    c.add_schedule_file(&file).unwrap();
    c.validate().unwrap();
    assert_eq!(named(&entries(&c).unwrap(), "extra").queue, "retention");
    assert!(matches!(
        c.source_of("beat.schedule.extra.task"),
        crate::config::Source::File(_)
    ));
    std::fs::write(&file, "[worker]\nconcurrency = 2\n").unwrap();
    let err = Config::default()
        .add_schedule_file(&file)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("worker.concurrency") && err.contains("only [beat.schedule"),
        "{err}"
    );
}

fn every(spec: &str) -> Schedule {
    Schedule::every(spec).unwrap()
}

fn instants(plan: &Plan) -> Vec<(String, bool)> {
    plan.due
        .iter()
        .map(|d| (d.at.to_string(), d.catch_up))
        .collect()
}

const GRACE: Duration = Duration::from_secs(3);

#[test]
fn on_time_occurrences_run_whatever_the_policy() {
    let s = every("1s");
    for policy in [MissedPolicy::Skip, MissedPolicy::Once, MissedPolicy::All] {
        let p = plan(
            &s,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:00:00.5Z"),
            GRACE,
            policy,
            100,
        );
        assert!(p.due.is_empty());
        let p = plan(
            &s,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:00:02.2Z"),
            GRACE,
            policy,
            100,
        );
        assert_eq!(
            instants(&p),
            [
                ("2026-01-01T00:00:01Z".to_string(), false),
                ("2026-01-01T00:00:02Z".to_string(), false)
            ],
            "a failover shorter than the grace loses nothing ({policy})"
        );
        assert_eq!(p.missed, 0);
    }
}

#[test]
fn missed_occurrences_follow_the_policy() {
    let s = every("1s");
    let base = ts("2026-01-01T00:00:00Z");
    let now = ts("2026-01-01T00:01:40Z");
    // Missed: 00:00:01 ..= 00:01:37 (97); on time: 00:01:38 ..= 00:01:40.
    let on_time = [
        ("2026-01-01T00:01:38Z".to_string(), false),
        ("2026-01-01T00:01:39Z".to_string(), false),
        ("2026-01-01T00:01:40Z".to_string(), false),
    ];

    let skip = plan(&s, base, now, GRACE, MissedPolicy::Skip, 100);
    assert_eq!(instants(&skip), on_time);
    assert_eq!(skip.missed, 97);

    let once = plan(&s, base, now, GRACE, MissedPolicy::Once, 100);
    let mut expected = vec![("2026-01-01T00:01:37Z".to_string(), true)];
    expected.extend(on_time.iter().cloned());
    assert_eq!(instants(&once), expected, "one catch-up: the newest missed");

    let all = plan(&s, base, now, GRACE, MissedPolicy::All, 100);
    assert_eq!(all.due.len(), 100);
    assert_eq!(all.due.iter().filter(|d| d.catch_up).count(), 97);
    assert!(
        all.due.windows(2).all(|w| w[0].at < w[1].at),
        "oldest first"
    );

    let bounded = plan(&s, base, now, GRACE, MissedPolicy::All, 5);
    let catch_up: Vec<String> = bounded
        .due
        .iter()
        .filter(|d| d.catch_up)
        .map(|d| d.at.to_string())
        .collect();
    assert_eq!(
        catch_up,
        [
            "2026-01-01T00:01:33Z",
            "2026-01-01T00:01:34Z",
            "2026-01-01T00:01:35Z",
            "2026-01-01T00:01:36Z",
            "2026-01-01T00:01:37Z"
        ],
        "the newest max_catch_up"
    );
}

#[test]
fn skipping_with_nothing_on_time_marks_the_missed_ones() {
    let daily = Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap();
    let base = ts("2026-01-01T12:00:00Z");
    let now = ts("2026-01-04T12:00:00Z");
    let skip = plan(&daily, base, now, GRACE, MissedPolicy::Skip, 100);
    assert!(skip.due.is_empty());
    assert_eq!(skip.missed, 3);
    assert_eq!(skip.skip_through, Some(ts("2026-01-04T01:00:00Z")));
    let once = plan(&daily, base, now, GRACE, MissedPolicy::Once, 100);
    assert_eq!(
        instants(&once),
        [("2026-01-04T01:00:00Z".to_string(), true)]
    );
    assert_eq!(once.skip_through, None);
}

#[test]
fn a_clock_stepped_back_fires_nothing_again() {
    let s = every("1s");
    let p = plan(
        &s,
        ts("2026-01-01T00:10:00Z"),
        ts("2026-01-01T00:05:00Z"),
        GRACE,
        MissedPolicy::All,
        100,
    );
    assert_eq!(p, Plan::default());
}

#[test]
fn the_message_decodes_with_the_worker_decoder() {
    let c = config(
        "[beat.schedule.x]\ntask = \"retention.sweep\"\nevery = \"1m\"\nargs = [7]\nkwargs = { dry_run = true }\n",
    );
    let entries = entries(&c).unwrap();
    let entry = named(&entries, "x");
    let due = Due {
        at: ts("2026-01-01T00:01:00Z"),
        catch_up: true,
    };
    let (list_key, envelope) = message::encode(&message(entry, due, "1@host"));
    assert_eq!(list_key, "retention");
    let msg = message::decode(envelope.as_bytes()).unwrap();
    assert_eq!(msg.task, "retention.sweep");
    assert_eq!(msg.args, vec![Value::from(7)]);
    assert_eq!(msg.kwargs.get("dry_run"), Some(&Value::Bool(true)));
    assert_eq!(msg.routing_key, "retention");
    assert_eq!(msg.headers["taskbox_beat_entry"], "x");
    assert_eq!(
        msg.headers["taskbox_beat_occurrence"],
        "2026-01-01T00:01:00.000000+00:00"
    );
    assert_eq!(msg.headers["taskbox_beat_catch_up"], true);
}

#[test]
fn unserved_lists_enabled_entries_without_a_component() {
    let entries = entries(&Config::default()).unwrap();
    let served = Served::Tasks(vec![
        "schedule.workflow_schedule_task.poll_workflow_schedules".into(),
    ]);
    let names: Vec<&str> = unserved(&entries, &served)
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, ["check_upgradable_plugin_task"]);
    let c = config("[beat.defaults]\ndatasets_queue_monitor = true\nretention_sweep = true\n");
    let entries = super::entries(&c).unwrap();
    let names: Vec<&str> = unserved(&entries, &Served::Tasks(Vec::new()))
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        !names.contains(&"datasets-queue-monitor"),
        "every worker runs the queue monitor: {names:?}"
    );
    assert!(names.contains(&"retention-sweep"), "{names:?}");
}

#[test]
fn list_shows_state_schedule_last_and_next_run() {
    let c = config(
        "[beat.schedule.clean_messages]\nenabled = true\n[beat.schedule.tick]\ntask = \"retention.sweep\"\nevery = \"30s\"\nmissed = \"all\"\n",
    );
    let entries = entries(&c).unwrap();
    let mut state = store::State::default();
    state
        .last_run
        .insert("tick".into(), ts("2026-01-01T00:00:30Z"));
    let now = ts("2026-01-01T00:00:40.250Z");
    let text = render_list(&entries, &state, Some((7, "host:42:abcd".into())), now);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("LAST RUN"),
        "{text}"
    );
    assert_eq!(lines.len(), 1 + entries.len() + 1, "{text}");
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let tick = row("tick");
    assert_eq!(tick[1], "yes");
    assert!(tick.contains(&"every") && tick.contains(&"30s") && tick.contains(&"all"));
    assert_eq!(tick[tick.len() - 2], "2026-01-01T00:00:30Z");
    assert_eq!(tick[tick.len() - 1], "2026-01-01T00:01:00Z");
    let messages = row("clean_messages");
    assert_eq!(messages[1], "yes");
    assert_eq!(messages[messages.len() - 2], "never");
    assert_eq!(messages[messages.len() - 1], "2026-01-01T04:00:00Z");
    let sweep = row("retention-sweep");
    assert_eq!((sweep[1], sweep[sweep.len() - 1]), ("no", "-"));
    assert_eq!(
        lines[lines.len() - 1],
        "leader: host:42:abcd (fencing token 7)"
    );
    let nobody = render_list(&entries, &state, None, now);
    assert!(nobody.ends_with("leader: none (no beat replica holds the lease)\n"));
}

#[test]
fn the_example_file_schedule_is_valid_when_uncommented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/taskbox.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = config(&uncommented);
    let entries = entries(&c).unwrap();
    let example = named(&entries, "nightly-retention");
    assert_eq!(example.queue, "retention");
    assert_eq!(example.missed, MissedPolicy::Skip);
    assert_eq!(
        example.schedule.to_string(),
        "cron \"30 3 * * *\" Europe/Berlin"
    );
    assert!(!named(&entries, "check_upgradable_plugin_task").enabled);
}
