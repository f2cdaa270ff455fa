//! The keyword arguments of `retention.sweep`: ages per category, the batch bound and the
//! directories to sweep, parsed from the call's `**ages` with rejects that name the culprit.

use taskbox_sdk::{Kwargs, Value};

/// Every keyword `retention.sweep` accepts besides `dry_run`, in the order the docs list them.
pub const KNOWN: [&str; 6] = [
    "results",
    "dead_letters",
    "datasets",
    "files",
    "batch_size",
    "paths",
];

/// Default age of stored task results worth keeping.
pub const DEFAULT_RESULTS: u64 = 7 * DAY;
/// Default age of dead letters worth keeping (long enough for someone to look at them).
pub const DEFAULT_DEAD_LETTERS: u64 = 30 * DAY;
/// Default age of a dataset tombstone before its keys are removed (a day to notice a mistake).
pub const DEFAULT_DATASETS: u64 = DAY;
/// Default age of files in the storage directories.
pub const DEFAULT_FILES: u64 = 30 * DAY;
/// Default number of records deleted per category per run.
pub const DEFAULT_BATCH: u32 = 1000;
/// Largest `batch_size` accepted, matching the most the host deletes in one call.
pub const MAX_BATCH: u32 = 10_000;
/// Directory swept for files when `paths` is not given.
pub const DEFAULT_PATH: &str = "/storage";

const DAY: u64 = 24 * 60 * 60;

/// What one run should do; a `None` age means that category is switched off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Stored results older than this many seconds are deleted.
    pub results: Option<u64>,
    /// Dead letters older than this many seconds are deleted.
    pub dead_letters: Option<u64>,
    /// Datasets tombstoned longer ago than this many seconds are removed.
    pub datasets: Option<u64>,
    /// Files modified longer ago than this many seconds are deleted.
    pub files: Option<u64>,
    /// The most records deleted per category in one run, so a run stays short.
    pub batch_size: u32,
    /// Guest directories swept for old files.
    pub paths: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            results: Some(DEFAULT_RESULTS),
            dead_letters: Some(DEFAULT_DEAD_LETTERS),
            datasets: Some(DEFAULT_DATASETS),
            files: Some(DEFAULT_FILES),
            batch_size: DEFAULT_BATCH,
            paths: vec![DEFAULT_PATH.to_string()],
        }
    }
}

impl Options {
    /// Reads the keywords left after `dry_run`; an unknown keyword or a bad value is an error
    /// message naming it, meant for a reject.
    pub fn from_kwargs(kwargs: &Kwargs) -> Result<Self, String> {
        let unknown: Vec<&str> = kwargs
            .keys()
            .map(String::as_str)
            .filter(|k| !KNOWN.contains(k))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|k| format!("'{k}'")).collect();
            return Err(format!(
                "unexpected keyword argument{} {}; retention.sweep accepts dry_run, {}",
                if unknown.len() == 1 { "" } else { "s" },
                names.join(", "),
                KNOWN.join(", ")
            ));
        }
        let mut options = Options::default();
        for (name, slot) in [
            ("results", &mut options.results),
            ("dead_letters", &mut options.dead_letters),
            ("datasets", &mut options.datasets),
            ("files", &mut options.files),
        ] {
            if let Some(value) = kwargs.get(name) {
                *slot = parse_age(name, value)?;
            }
        }
        if let Some(value) = kwargs.get("batch_size") {
            options.batch_size = parse_batch(value)?;
        }
        if let Some(value) = kwargs.get("paths") {
            options.paths = parse_paths(value)?;
        }
        Ok(options)
    }
}

/// An age in seconds: an integer, or a string such as `"30d"`, `"12h"`, `"90m"`, `"45s"` or
/// `"3600"`; `null` or `"off"` switch the category off (`Ok(None)`).
pub fn parse_age(name: &str, value: &Value) -> Result<Option<u64>, String> {
    let bad = || {
        format!(
            "argument '{name}' must be seconds (a whole number >= 0), a duration like \"30d\", \
             \"12h\", \"90m\" or \"45s\", or null/\"off\" to skip it; got {value}"
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            if s.eq_ignore_ascii_case("off") {
                return Ok(None);
            }
            parse_duration(s).map(Some).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Seconds in `"<digits>[d|h|m|s]"` (no unit means seconds); `None` when malformed or too large.
fn parse_duration(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        Some(_) => (s, 's'),
        None => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = match unit {
        'd' => DAY,
        'h' => 60 * 60,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

fn parse_batch(value: &Value) -> Result<u32, String> {
    value
        .as_u64()
        .filter(|n| (1..=u64::from(MAX_BATCH)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            format!(
                "argument 'batch_size' must be a whole number from 1 to {MAX_BATCH}; got {value}"
            )
        })
}

fn parse_paths(value: &Value) -> Result<Vec<String>, String> {
    let bad = || {
        format!(
            "argument 'paths' must be a list of directory paths such as [\"{DEFAULT_PATH}\"]; got {value}"
        )
    };
    let Value::Array(items) = value else {
        return Err(bad());
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use taskbox_sdk::json;

    use super::*;

    fn kwargs(v: Value) -> Kwargs {
        match v {
            Value::Object(m) => m,
            _ => Kwargs::new(),
        }
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30d"), Some(30 * DAY));
        assert_eq!(parse_duration("12h"), Some(12 * 3600));
        assert_eq!(parse_duration("90m"), Some(5400));
        assert_eq!(parse_duration("45s"), Some(45));
        assert_eq!(parse_duration("3600"), Some(3600));
        assert_eq!(parse_duration("0s"), Some(0));
        for bad in [
            "",
            "d",
            "1w",
            "-1d",
            "1.5h",
            "1 d",
            "h1",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn defaults_and_switches() {
        assert_eq!(Options::from_kwargs(&Kwargs::new()), Ok(Options::default()));
        let o = Options::from_kwargs(&kwargs(json!({
            "results": 60, "dead_letters": null, "datasets": "OFF", "files": " 2h ",
            "batch_size": 5, "paths": ["/a", "/b"]
        })))
        .unwrap();
        assert_eq!(o.results, Some(60));
        assert_eq!(o.dead_letters, None);
        assert_eq!(o.datasets, None);
        assert_eq!(o.files, Some(7200));
        assert_eq!(o.batch_size, 5);
        assert_eq!(o.paths, ["/a", "/b"]);
    }

    #[test]
    fn bad_values_name_the_argument() {
        for (kw, name) in [
            (json!({"results": "soon"}), "results"),
            (json!({"dead_letters": -5}), "dead_letters"),
            (json!({"datasets": 1.5}), "datasets"),
            (json!({"files": true}), "files"),
            (json!({"batch_size": 0}), "batch_size"),
            (json!({"batch_size": 10001}), "batch_size"),
            (json!({"batch_size": null}), "batch_size"),
            (json!({"paths": "/storage"}), "paths"),
            (json!({"paths": [""]}), "paths"),
        ] {
            let err = Options::from_kwargs(&kwargs(kw.clone())).unwrap_err();
            assert!(err.contains(&format!("'{name}'")), "{kw}: {err}");
        }
    }

    #[test]
    fn unknown_keywords_are_named_with_the_known_ones() {
        let err = Options::from_kwargs(&kwargs(json!({"result": "1d"}))).unwrap_err();
        assert!(err.contains("'result'"), "{err}");
        for known in KNOWN {
            assert!(err.contains(known), "{err}");
        }
    }
}
