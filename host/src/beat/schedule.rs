//! When a periodic entry is due: 5-field crontabs (Vixie syntax) and fixed intervals, parsed
//! once at start-up, and the pure next-occurrence arithmetic in the entry's time zone.
//!
//! Occurrences are instants ([`Timestamp`]), never wall-clock readings, so two replicas and two
//! runs of the same schedule always agree on them; that is what lets beat deduplicate by
//! occurrence. Daylight-saving rules (see [`Cron`]): a fixed-hour job whose time falls in a
//! spring-forward gap fires once, at the end of the gap; one whose time is repeated by a
//! fall-back fold fires once, on the first pass. A job whose hour field starts with `*` follows
//! real time instead: it skips clock times that do not exist and runs on both passes of a fold,
//! so its spacing stays even.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Why a crontab, interval or time zone cannot be used. Callers add the entry's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The crontab does not parse, or can never fire.
    #[error("crontab {spec:?}: {reason}")]
    Cron {
        /// The crontab as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The interval does not parse or is too short.
    #[error("interval {spec:?}: {reason}")]
    Interval {
        /// The interval as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The time zone is not in the time zone database.
    #[error("time zone {name:?}: {reason}")]
    TimeZone {
        /// The zone as written.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The shortest interval accepted: anything faster would be a busy loop, not a schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How far back before an instant a fall-back fold can reach: no zone in the tz database
/// repeats more than this much civil time at once.
const MAX_FOLD: SignedDuration = SignedDuration::from_hours(3);

/// How many days [`Cron`] searches before deciding a schedule has no further occurrence; the
/// rarest day a crontab can name, February 29, recurs within 8 years.
const SEARCH_DAYS: u32 = 366 * 30;

/// One crontab field: its name, bounds and (for months and weekdays) the names it accepts.
struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// A parsed 5-field crontab (`minute hour day-of-month month day-of-week`), as Vixie cron reads
/// it: `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n`, `a-b/n` and `a/n`, month names
/// `JAN`-`DEC`, weekday names `SUN`-`SAT` (0 and 7 are Sunday), any case, and the `@hourly`,
/// `@daily`/`@midnight`, `@weekly`, `@monthly` and `@yearly`/`@annually` shorthands.
///
/// When both day fields are restricted (neither starts with `*`), a day matches if *either*
/// does (`0 9 1 * MON`: the 1st and every Monday), as in Vixie cron; otherwise both must.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    spec: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_star: bool,
    weekdays_star: bool,
    hours_star: bool,
}

impl Cron {
    /// Parses a crontab, saying which field is wrong and why.
    pub fn parse(spec: &str) -> Result<Cron, ScheduleError> {
        let bad = |reason: String| ScheduleError::Cron {
            spec: spec.to_string(),
            reason,
        };
        let trimmed = spec.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other if other.starts_with('@') => {
                return Err(bad(format!(
                    "unknown shorthand {trimmed:?}; use @hourly, @daily, @weekly, @monthly or \
                     @yearly, or five fields"
                )));
            }
            _ => trimmed,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(bad(format!(
                "has {} fields; a crontab has five: minute hour day-of-month month day-of-week \
                 (e.g. \"0 2 * * *\" for 02:00 daily)",
                fields.len()
            )));
        }
        let minutes = parse_field(fields[0], &MINUTE).map_err(&bad)?;
        let hours = parse_field(fields[1], &HOUR).map_err(&bad)?;
        let days = parse_field(fields[2], &DAY_OF_MONTH).map_err(&bad)?;
        let months = parse_field(fields[3], &MONTH).map_err(&bad)?;
        let mut weekdays = parse_field(fields[4], &DAY_OF_WEEK).map_err(&bad)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let cron = Cron {
            spec: trimmed.to_string(),
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: fields[2].starts_with('*'),
            weekdays_star: fields[4].starts_with('*'),
            hours_star: fields[1].starts_with('*'),
        };
        // With the weekday unrestricted, the day of month alone decides: `0 0 30 2 *` never
        // matches and would make every search run to its limit.
        if cron.weekdays_star && !cron.has_possible_day() {
            return Err(bad(
                "no month it names has a day it names (e.g. February 30), so it never fires"
                    .to_string(),
            ));
        }
        Ok(cron)
    }

    /// The crontab as written.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    fn has_possible_day(&self) -> bool {
        const LONGEST: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u8).any(|month| {
            has(self.months, month)
                && (1..=LONGEST[usize::from(month - 1)]).any(|d| has(self.days, d))
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = has(self.days, date.day() as u8);
        let weekday = has(self.weekdays, date.weekday().to_sunday_zero_offset() as u8);
        if self.days_star || self.weekdays_star {
            day && weekday
        } else {
            day || weekday
        }
    }

    /// The first civil minute at or after `from` that the fields match, or `None` when none
    /// comes within the search horizon.
    fn next_civil(&self, from: DateTime) -> Option<DateTime> {
        let mut date = from.date();
        let mut hour = from.hour() as u8;
        let mut minute = from.minute() as u8;
        let mut days = 0u32;
        while days <= SEARCH_DAYS {
            if !has(self.months, date.month() as u8) {
                // Straight to the 1st of the next month.
                days += (date.days_in_month() - date.day()) as u32 + 1;
                date = date.last_of_month().tomorrow().ok()?;
                (hour, minute) = (0, 0);
                continue;
            }
            if self.day_matches(date)
                && let Some(h) = next_set(self.hours, hour, HOUR.max)
            {
                if h != hour {
                    (hour, minute) = (h, 0);
                }
                if let Some(m) = next_set(self.minutes, minute, MINUTE.max) {
                    return Some(date.at(hour as i8, m as i8, 0, 0));
                }
                if hour < HOUR.max {
                    (hour, minute) = (hour + 1, 0);
                    continue;
                }
            }
            days += 1;
            date = date.tomorrow().ok()?;
            (hour, minute) = (0, 0);
        }
        None
    }

    /// The instants a matching civil time stands for in `tz`: one normally; for a time in a
    /// spring-forward gap, the end of the gap (or none when the hour field starts with `*`); for
    /// a time in a fall-back fold, the first pass (and also the second when the hour field
    /// starts with `*`). The first instant returned never decreases as `civil` increases.
    fn instants(&self, tz: &TimeZone, civil: DateTime) -> Vec<Timestamp> {
        match tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                offset.to_timestamp(civil).ok().into_iter().collect()
            }
            AmbiguousOffset::Gap { after, .. } => {
                if self.hours_star {
                    return Vec::new();
                }
                // Read with the later offset, the time lands just before the jump; the jump
                // itself is the first valid instant after the missing time.
                let Ok(before_jump) = after.to_timestamp(civil) else {
                    return Vec::new();
                };
                tz.following(before_jump)
                    .next()
                    .map(|t| t.timestamp())
                    .into_iter()
                    .collect()
            }
            AmbiguousOffset::Fold { before, after } => {
                let first = before.to_timestamp(civil).ok();
                let second = after.to_timestamp(civil).ok().filter(|_| self.hours_star);
                first.into_iter().chain(second).collect()
            }
        }
    }

    /// The first occurrence strictly after `after`, in `tz`.
    pub fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        // A civil time before `after`'s own reading can still have an instant after it when a
        // fold is near, so start that far back then; otherwise at `after`'s civil minute.
        let near_fold = tz
            .preceding(after.saturating_add(MAX_FOLD).ok()?)
            .next()
            .is_some_and(|t| t.timestamp() > after.saturating_sub(MAX_FOLD).unwrap_or(after));
        let start = if near_fold {
            after.saturating_sub(MAX_FOLD).unwrap_or(after)
        } else {
            after
        };
        let reading = tz.to_datetime(start);
        let mut cursor = reading.date().at(reading.hour(), reading.minute(), 0, 0);
        let mut best: Option<Timestamp> = None;
        loop {
            let Some(civil) = self.next_civil(cursor) else {
                return best;
            };
            let instants = self.instants(tz, civil);
            // The first instant never decreases, so once it passes the best, nothing later wins.
            if let (Some(first), Some(best)) = (instants.first(), best)
                && *first >= best
            {
                return Some(best);
            }
            for t in instants {
                if t > after && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            }
            let Ok(next) = civil.checked_add(SignedDuration::from_mins(1)) else {
                return best;
            };
            cursor = next;
        }
    }
}

/// Whether bit `n` is set.
fn has(bits: u64, n: u8) -> bool {
    n < 64 && bits & (1u64 << n) != 0
}

/// The smallest set bit at or above `from` and at most `max`.
fn next_set(bits: u64, from: u8, max: u8) -> Option<u8> {
    (from..=max).find(|n| has(bits, *n))
}

/// Parses one field into a bit set, naming the field and the offending part on error.
fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        if part.is_empty() {
            return Err(format!(
                "the {} field {text:?} has an empty list item",
                field.name
            ));
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step = step.parse::<u8>().ok().filter(|s| *s >= 1).ok_or_else(|| {
                    format!(
                        "the {} field step {step:?} is not a whole number from 1",
                        field.name
                    )
                })?;
                (range, Some(step))
            }
            None => (part, None),
        };
        let (lo, hi) = if range == "*" {
            (field.min, field.max)
        } else if let Some((lo, hi)) = range.split_once('-') {
            (parse_value(lo, field)?, parse_value(hi, field)?)
        } else {
            let value = parse_value(range, field)?;
            // `a/n` means from a to the end, every n.
            (value, if step.is_some() { field.max } else { value })
        };
        if lo > hi {
            return Err(format!(
                "the {} field range {range:?} runs backwards; write the smaller value first",
                field.name
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1u64 << v;
            v = match v.checked_add(step.unwrap_or(1)) {
                Some(next) => next,
                None => break,
            };
        }
    }
    Ok(bits)
}

/// One value of a field: a number in range or (for months and weekdays) a three-letter name.
fn parse_value(text: &str, field: &Field) -> Result<u8, String> {
    let range = || {
        let names = match (field.names.first(), field.names.last()) {
            (Some(first), Some(last)) => format!(" or a name {first}-{last}"),
            _ => String::new(),
        };
        format!(
            "{text:?} is not a valid {}: use {}-{}{names}",
            field.name, field.min, field.max
        )
    };
    if let Ok(n) = text.parse::<u8>() {
        return if (field.min..=field.max).contains(&n) {
            Ok(n)
        } else {
            Err(range())
        };
    }
    field
        .names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .and_then(|i| u8::try_from(i).ok())
        .map(|i| {
            // Month names count from 1, weekday names from 0 (Sunday).
            if field.min == 1 { i + 1 } else { i }
        })
        .ok_or_else(range)
}

/// A fixed period, aligned to the Unix epoch so every replica computes the same instants: an
/// `every = "5m"` entry fires at :00, :05, :10 UTC whichever process leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    millis: i64,
}

impl Interval {
    /// Parses `30s`, `5m`, `1h`, `1h30m`, `1day`; refuses anything under [`MIN_INTERVAL`].
    pub fn parse(spec: &str) -> Result<Interval, ScheduleError> {
        let bad = |reason: String| ScheduleError::Interval {
            spec: spec.to_string(),
            reason,
        };
        let period = crate::config::parse_duration(spec).map_err(bad)?;
        if period < MIN_INTERVAL {
            return Err(bad(format!(
                "shorter than the minimum of {}; use e.g. \"1s\" or longer",
                humantime::format_duration(MIN_INTERVAL)
            )));
        }
        let millis = i64::try_from(period.as_millis())
            .map_err(|_| bad("too long to be a period".to_string()))?;
        Ok(Interval { millis })
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.millis.unsigned_abs())
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let k = after
            .as_millisecond()
            .div_euclid(self.millis)
            .checked_add(1)?;
        Timestamp::from_millisecond(k.checked_mul(self.millis)?).ok()
    }

    /// The newest `limit` occurrences in `(after, upto]`, oldest first, by arithmetic.
    fn newest(&self, after: Timestamp, upto: Timestamp, limit: usize) -> Vec<Timestamp> {
        let lo = after.as_millisecond().div_euclid(self.millis) + 1;
        let hi = upto.as_millisecond().div_euclid(self.millis);
        if hi < lo || limit == 0 {
            return Vec::new();
        }
        let count = i64::try_from(limit).unwrap_or(i64::MAX).min(hi - lo + 1);
        (hi - count + 1..=hi)
            .filter_map(|k| Timestamp::from_millisecond(k * self.millis).ok())
            .collect()
    }
}

/// What an entry runs on: a crontab in a time zone, or a fixed interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A crontab read in `tz` (named `zone` as configured).
    Cron {
        /// The parsed crontab.
        cron: Cron,
        /// The zone its times are read in.
        tz: TimeZone,
        /// The zone's name as configured, for display.
        zone: String,
    },
    /// A fixed period.
    Every {
        /// The period.
        interval: Interval,
        /// As configured, for display.
        spec: String,
    },
}

impl Schedule {
    /// A crontab read in the IANA time zone `zone` (e.g. `Europe/Berlin`, `UTC`).
    pub fn cron(spec: &str, zone: &str) -> Result<Schedule, ScheduleError> {
        let tz = time_zone(zone)?;
        Ok(Schedule::Cron {
            cron: Cron::parse(spec)?,
            tz,
            zone: zone.to_string(),
        })
    }

    /// A fixed interval such as `30s`.
    pub fn every(spec: &str) -> Result<Schedule, ScheduleError> {
        Ok(Schedule::Every {
            interval: Interval::parse(spec)?,
            spec: spec.trim().to_string(),
        })
    }

    /// The first occurrence strictly after `after`; `None` when there is none (a crontab
    /// whose only days are out of reach, or a time past the calendar's end).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Cron { cron, tz, .. } => cron.next_after(tz, after),
            Schedule::Every { interval, .. } => interval.next_after(after),
        }
    }

    /// The newest `limit` occurrences in `(after, upto]`, oldest first. It looks back from
    /// `upto` in growing windows, so a long outage costs time proportional to `limit`, not to
    /// the number of occurrences missed.
    pub fn newest(&self, after: Timestamp, upto: Timestamp, limit: usize) -> Vec<Timestamp> {
        if limit == 0 || upto <= after {
            return Vec::new();
        }
        if let Schedule::Every { interval, .. } = self {
            return interval.newest(after, upto, limit);
        }
        let mut window = SignedDuration::from_hours(1);
        loop {
            let start = upto
                .checked_sub(window)
                .ok()
                .filter(|s| *s > after)
                .unwrap_or(after);
            let mut found = VecDeque::with_capacity(limit.min(1024) + 1);
            let mut cursor = start;
            while let Some(t) = self.next_after(cursor).filter(|t| *t <= upto) {
                found.push_back(t);
                if found.len() > limit {
                    found.pop_front();
                }
                cursor = t;
            }
            if found.len() >= limit || start == after {
                return found.into();
            }
            window = window.checked_mul(8).unwrap_or(SignedDuration::MAX);
        }
    }

    /// How many occurrences fall in `(after, upto]`, counting at most `cap`.
    pub fn count(&self, after: Timestamp, upto: Timestamp, cap: usize) -> usize {
        if let Schedule::Every { interval, .. } = self {
            return interval.newest(after, upto, cap).len();
        }
        let mut n = 0;
        let mut cursor = after;
        while n < cap
            && let Some(t) = self.next_after(cursor).filter(|t| *t <= upto)
        {
            n += 1;
            cursor = t;
        }
        n
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { cron, zone, .. } => write!(f, "cron \"{}\" {zone}", cron.spec()),
            Schedule::Every { spec, .. } => write!(f, "every {spec}"),
        }
    }
}

/// Looks up an IANA zone (`UTC`, `Europe/Berlin`), with a fix when it is unknown.
pub fn time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    TimeZone::get(name.trim()).map_err(|e| ScheduleError::TimeZone {
        name: name.to_string(),
        reason: format!(
            "not in the time zone database ({e}); use an IANA name such as UTC, \
             Europe/Berlin or America/New_York"
        ),
    })
}

#[cfg(test)]
mod tests;
