//! Crontab parsing and next-run arithmetic: examples for every syntax form, the Vixie
//! day-of-month/day-of-week rule, leap days and DST in Europe/Berlin and America/New_York, then
//! properties checked against a brute-force minute-by-minute search.

use proptest::prelude::*;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(spec: &str, zone: &str) -> Schedule {
    Schedule::cron(spec, zone).unwrap()
}

/// The first `n` occurrences after `from`.
fn run(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = ts(from);
    for _ in 0..n {
        t = schedule.next_after(t).unwrap();
        out.push(t.to_string());
    }
    out
}

fn cron_error(spec: &str) -> String {
    Cron::parse(spec).unwrap_err().to_string()
}

#[test]
fn bad_crontabs_say_which_field_and_why() {
    let err = cron_error("0 2 * *");
    assert!(err.contains("4 fields") && err.contains("five"), "{err}");
    let err = cron_error("61 * * * *");
    assert!(
        err.contains("\"61\"") && err.contains("minute") && err.contains("0-59"),
        "{err}"
    );
    let err = cron_error("0 24 * * *");
    assert!(err.contains("hour") && err.contains("0-23"), "{err}");
    let err = cron_error("0 0 0 * *");
    assert!(
        err.contains("day of month") && err.contains("1-31"),
        "{err}"
    );
    let err = cron_error("0 0 * FOO *");
    assert!(err.contains("month") && err.contains("JAN-DEC"), "{err}");
    let err = cron_error("0 0 * * MON-SUNDAY");
    assert!(
        err.contains("\"SUNDAY\"") && err.contains("SUN-SAT"),
        "{err}"
    );
    let err = cron_error("0 10-2 * * *");
    assert!(err.contains("backwards"), "{err}");
    let err = cron_error("*/0 * * * *");
    assert!(err.contains("step") && err.contains("\"0\""), "{err}");
    let err = cron_error("1,,2 * * * *");
    assert!(err.contains("empty list item"), "{err}");
    let err = cron_error("0 0 30 2 *");
    assert!(err.contains("never fires"), "{err}");
    let err = cron_error("@fortnightly");
    assert!(err.contains("@fortnightly"), "{err}");
    assert!(
        Cron::parse("0 0 31 2,4 MON").is_ok(),
        "with a weekday restricted too, Mondays still match (OR rule)"
    );
}

#[test]
fn bad_intervals_and_zones_are_refused() {
    let err = Interval::parse("soon").unwrap_err().to_string();
    assert!(err.contains("\"soon\"") && err.contains("30s"), "{err}");
    let err = Interval::parse("500ms").unwrap_err().to_string();
    assert!(err.contains("minimum"), "{err}");
    let err = time_zone("Mars/Olympus").unwrap_err().to_string();
    assert!(
        err.contains("Mars/Olympus") && err.contains("IANA"),
        "{err}"
    );
}

#[test]
fn steps_ranges_lists_and_names() {
    let every_15 = cron("*/15 * * * *", "UTC");
    assert_eq!(
        run(&every_15, "2026-01-05T10:07:00Z", 3),
        [
            "2026-01-05T10:15:00Z",
            "2026-01-05T10:30:00Z",
            "2026-01-05T10:45:00Z"
        ]
    );
    let stepped_range = cron("1-10/3 9 * * *", "UTC");
    assert_eq!(
        run(&stepped_range, "2026-01-05T00:00:00Z", 5),
        [
            "2026-01-05T09:01:00Z",
            "2026-01-05T09:04:00Z",
            "2026-01-05T09:07:00Z",
            "2026-01-05T09:10:00Z",
            "2026-01-06T09:01:00Z"
        ]
    );
    // `a/n` runs from a to the end of the field.
    let from_50 = cron("50/5 0 * * *", "UTC");
    assert_eq!(
        run(&from_50, "2026-01-05T00:00:00Z", 3),
        [
            "2026-01-05T00:50:00Z",
            "2026-01-05T00:55:00Z",
            "2026-01-06T00:50:00Z"
        ]
    );
    // Names in any case, in lists and ranges: 08:00 on weekdays in January and July.
    let names = cron("0 8 * jan,JUL Mon-fri", "UTC");
    assert_eq!(
        run(&names, "2026-01-30T12:00:00Z", 2),
        ["2026-07-01T08:00:00Z", "2026-07-02T08:00:00Z"],
        "Fri Jan 30 has passed 08:00, Jan 31 is a Saturday, then July 1st (a Wednesday)"
    );
    // 0 and 7 are both Sunday.
    for spec in ["0 12 * * 0", "0 12 * * 7", "0 12 * * SUN", "@weekly"] {
        let first = cron(spec, "UTC")
            .next_after(ts("2026-01-05T00:00:00Z"))
            .unwrap();
        assert_eq!(first.to_string()[..10], *"2026-01-11", "{spec}");
    }
    assert_eq!(
        run(&cron("@hourly", "UTC"), "2026-01-05T10:59:59Z", 1),
        ["2026-01-05T11:00:00Z"]
    );
    assert_eq!(
        run(&cron("@yearly", "UTC"), "2026-01-05T00:00:00Z", 1),
        ["2027-01-01T00:00:00Z"]
    );
}

#[test]
fn day_of_month_and_weekday_or_when_both_restricted() {
    // Friday the 13th style: midnight on every 13th AND on every Friday (Vixie's OR).
    let either = cron("0 0 13 * FRI", "UTC");
    assert_eq!(
        run(&either, "2026-02-01T12:00:00Z", 4),
        [
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z",
            "2026-02-27T00:00:00Z"
        ],
        "Feb 13 2026 is itself a Friday"
    );
    assert_eq!(
        run(&either, "2026-03-07T12:00:00Z", 3),
        [
            "2026-03-13T00:00:00Z",
            "2026-03-20T00:00:00Z",
            "2026-03-27T00:00:00Z"
        ]
    );
    assert_eq!(
        run(&either, "2026-04-04T00:00:00Z", 3),
        [
            "2026-04-10T00:00:00Z",
            "2026-04-13T00:00:00Z",
            "2026-04-17T00:00:00Z"
        ],
        "Monday April 13 fires through the day of month"
    );
    // A day field starting with `*` is not a restriction: both must match (AND).
    let both = cron("0 0 */2 * MON", "UTC");
    assert_eq!(
        run(&both, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-05T00:00:00Z",
            "2026-01-19T00:00:00Z",
            "2026-02-09T00:00:00Z"
        ],
        "Mondays on odd days of the month only"
    );
}

#[test]
fn leap_days() {
    let leap = cron("0 6 29 2 *", "UTC");
    assert_eq!(
        run(&leap, "2025-03-01T00:00:00Z", 3),
        [
            "2028-02-29T06:00:00Z",
            "2032-02-29T06:00:00Z",
            "2036-02-29T06:00:00Z"
        ]
    );
    let leap_berlin = cron("30 0 29 FEB *", "Europe/Berlin");
    assert_eq!(
        run(&leap_berlin, "2027-01-01T00:00:00Z", 1),
        ["2028-02-28T23:30:00Z"],
        "00:30 CET on Feb 29 is 23:30 UTC the day before"
    );
    let last_days = cron("0 0 28-31 2 *", "UTC");
    assert_eq!(
        run(&last_days, "2027-02-27T00:00:00Z", 3),
        [
            "2027-02-28T00:00:00Z",
            "2028-02-28T00:00:00Z",
            "2028-02-29T00:00:00Z"
        ]
    );
}

#[test]
fn berlin_spring_forward_gap_fires_once_at_the_end_of_the_gap() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 does not exist that day.
    let daily = cron("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        run(&daily, "2026-03-28T00:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z"
        ],
        "02:30 CET, then 03:00 CEST (the first valid instant), then 02:30 CEST"
    );
    // Several times inside the gap collapse into that one instant.
    let quarters = cron("*/15 2 * * *", "Europe/Berlin");
    assert_eq!(
        run(&quarters, "2026-03-29T00:50:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]
    );
    // A job with a `*` hour follows real time: 01:15 CET, then 03:15 CEST, one hour apart.
    let hourly = cron("15 * * * *", "Europe/Berlin");
    assert_eq!(
        run(&hourly, "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:15:00Z",
            "2026-03-29T01:15:00Z",
            "2026-03-29T02:15:00Z"
        ]
    );
}

#[test]
fn berlin_fall_back_fold_fires_once_on_the_first_pass() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:30 happens twice.
    let daily = cron("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        run(&daily, "2026-10-24T01:00:00Z", 3),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ],
        "02:30 CEST only, not 02:30 CET an hour later"
    );
    // Asked from inside the second pass, the repeated time does not come back.
    assert_eq!(
        run(&daily, "2026-10-25T01:10:00Z", 1),
        ["2026-10-26T01:30:00Z"]
    );
    // A `*` hour keeps real-time spacing through the fold: every hour, both passes.
    let hourly = cron("15 * * * *", "Europe/Berlin");
    assert_eq!(
        run(&hourly, "2026-10-24T23:00:00Z", 4),
        [
            "2026-10-24T23:15:00Z",
            "2026-10-25T00:15:00Z",
            "2026-10-25T01:15:00Z",
            "2026-10-25T02:15:00Z"
        ]
    );
}

#[test]
fn new_york_gap_and_fold() {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    let spring = cron("30 2 * * *", "America/New_York");
    assert_eq!(
        run(&spring, "2026-03-07T12:00:00Z", 2),
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]
    );
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00 UTC; 01:30 happens twice.
    let fall = cron("30 1 * * *", "America/New_York");
    assert_eq!(
        run(&fall, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    let every_half_hour = cron("*/30 * * * *", "America/New_York");
    assert_eq!(
        run(&every_half_hour, "2026-11-01T05:10:00Z", 4),
        [
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:00:00Z"
        ],
        "01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST: thirty minutes apart throughout"
    );
}

#[test]
fn intervals_are_epoch_aligned() {
    let every = Schedule::every("30s").unwrap();
    assert_eq!(
        run(&every, "2026-01-05T10:00:10Z", 3),
        [
            "2026-01-05T10:00:30Z",
            "2026-01-05T10:01:00Z",
            "2026-01-05T10:01:30Z"
        ]
    );
    let hourly = Schedule::every("1h").unwrap();
    assert_eq!(
        run(&hourly, "2026-01-05T10:00:00Z", 1),
        ["2026-01-05T11:00:00Z"],
        "strictly after: an instant on the boundary is not its own next"
    );
    assert_eq!(every.to_string(), "every 30s");
    assert_eq!(
        cron("0 2 * * *", "Europe/Berlin").to_string(),
        "cron \"0 2 * * *\" Europe/Berlin"
    );
}

#[test]
fn newest_and_count_look_back_cheaply() {
    let every = Schedule::every("1s").unwrap();
    let from = ts("2026-01-01T00:00:00Z");
    let week_later = ts("2026-01-08T00:00:00Z");
    let newest = every.newest(from, week_later, 3);
    assert_eq!(
        newest.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        [
            "2026-01-07T23:59:58Z",
            "2026-01-07T23:59:59Z",
            "2026-01-08T00:00:00Z"
        ]
    );
    assert_eq!(every.count(from, week_later, 10), 10, "capped");
    let daily = cron("0 2 * * *", "Europe/Berlin");
    let newest = daily.newest(from, ts("2026-01-10T12:00:00Z"), 2);
    assert_eq!(
        newest.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        ["2026-01-09T01:00:00Z", "2026-01-10T01:00:00Z"]
    );
    assert_eq!(daily.count(from, ts("2026-01-10T12:00:00Z"), 100), 10);
    assert!(daily.newest(from, from, 5).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// One field written from a random choice of the forms cron accepts.
fn field(min: u8, max: u8) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (1u8..=max.max(2)).prop_map(|s| format!("*/{s}")),
        (min..=max).prop_map(|v| v.to_string()),
        (min..=max, min..=max, 1u8..=5).prop_map(|(a, b, s)| {
            let (lo, hi) = (a.min(b), a.max(b));
            format!("{lo}-{hi}/{s}")
        }),
        prop::collection::vec(min..=max, 1..4)
            .prop_map(|vs| { vs.iter().map(u8::to_string).collect::<Vec<_>>().join(",") }),
    ]
}

fn crontab() -> impl Strategy<Value = String> {
    (
        field(0, 59),
        field(0, 23),
        field(1, 28),
        field(1, 12),
        field(0, 7),
    )
        .prop_map(|(m, h, dom, mon, dow)| format!("{m} {h} {dom} {mon} {dow}"))
}

/// Whether the civil minute matches, by the crontab's own definition, without the search.
fn matches_civil(c: &Cron, dt: DateTime) -> bool {
    has(c.minutes, dt.minute() as u8)
        && has(c.hours, dt.hour() as u8)
        && has(c.months, dt.month() as u8)
        && c.day_matches(dt.date())
}

fn instant() -> impl Strategy<Value = Timestamp> {
    // 2001..2037, to the second.
    (978_307_200i64..2_114_380_800).prop_map(|s| Timestamp::from_second(s).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// In UTC, the next occurrence matches the fields, lies after the start, and no minute in
    /// between matches (checked minute by minute up to three days).
    #[test]
    fn utc_next_is_the_first_matching_minute(spec in crontab(), start in instant()) {
        let c = Cron::parse(&spec).unwrap();
        let next = c.next_after(&TimeZone::UTC, start).unwrap();
        prop_assert!(next > start);
        let civil = TimeZone::UTC.to_datetime(next);
        prop_assert_eq!(civil.second(), 0);
        prop_assert!(matches_civil(&c, civil), "{} at {}", spec, next);
        let minutes = (next.as_second() - start.as_second()) / 60;
        if minutes <= 3 * 24 * 60 {
            let mut t = start.as_second() - start.as_second().rem_euclid(60) + 60;
            while t < next.as_second() {
                let dt = TimeZone::UTC.to_datetime(Timestamp::from_second(t).unwrap());
                prop_assert!(!matches_civil(&c, dt), "{} skipped {}", spec, dt);
                t += 60;
            }
        }
    }

    /// A fixed-hour daily job fires exactly once per local day, DST days included.
    #[test]
    fn fixed_daily_fires_once_per_local_day(
        minute in 0u8..60,
        hour in 0u8..24,
        zone in prop::sample::select(vec!["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
        year in 2024i16..2030,
    ) {
        let s = cron(&format!("{minute} {hour} * * *"), zone);
        let tz = time_zone(zone).unwrap();
        let mut t = tz.to_ambiguous_timestamp(Date::new(year, 1, 1).unwrap().at(0, 0, 0, 0))
            .compatible().unwrap();
        let mut previous: Option<Date> = None;
        for _ in 0..370 {
            let next = s.next_after(t).unwrap();
            let day = tz.to_datetime(next).date();
            if let Some(p) = previous {
                prop_assert_eq!(p.tomorrow().unwrap(), day, "{} {}:{} after {}", zone, hour, minute, next);
            }
            previous = Some(day);
            t = next;
        }
    }

    /// Occurrences strictly increase, and `newest` agrees with walking forward.
    #[test]
    fn newest_agrees_with_walking_forward(
        spec in crontab(),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
        start in instant(),
        limit in 1usize..6,
    ) {
        let s = Schedule::cron(&spec, zone).unwrap();
        let mut walked = Vec::new();
        let mut t = start;
        for _ in 0..12 {
            let next = s.next_after(t).unwrap();
            prop_assert!(next > t);
            walked.push(next);
            t = next;
        }
        let upto = walked[walked.len() - 1];
        let newest = s.newest(start, upto, limit);
        prop_assert_eq!(&newest[..], &walked[walked.len() - limit..]);
    }

    /// Interval occurrences are the next multiple of the period after the start.
    #[test]
    fn interval_next_is_the_next_multiple(secs in 1i64..100_000, start in instant()) {
        let s = Schedule::every(&format!("{secs}s")).unwrap();
        let next = s.next_after(start).unwrap();
        prop_assert!(next > start);
        prop_assert!(next.as_second() - start.as_second() <= secs);
        prop_assert_eq!(next.as_millisecond() % (secs * 1000), 0);
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn parsing_never_panics(text in "[0-9A-Za-z*/,@ -]{0,40}") {
        let _ = Cron::parse(&text);
        let _ = Interval::parse(&text);
    }
}
