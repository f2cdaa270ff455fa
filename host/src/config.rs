//! Configuration values shared by every command: human-friendly sizes and durations, and the
//! serde helpers that parse them from TOML, environment variables and flags alike.
//!
//! Sizes accept `bytesize` forms (`"64MiB"`, `"1GB"`, `"4096"`); durations accept `humantime`
//! forms (`"30s"`, `"5m"`, `"250ms"`).

use std::time::Duration;

/// Parses a byte size such as `64MiB`, `1 GiB` or `4096`, naming the value when it is bad.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let trimmed = s.trim();
    if let Ok(n) = trimmed.parse::<u64>() {
        return Ok(n);
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("'{s}' is not a size: use a number of bytes or a unit such as 64MiB or 1GiB"))
}

/// Parses a duration such as `30s`, `5m` or `250ms`, naming the value when it is bad.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("'{s}' is not a duration: use a number with a unit such as 30s, 5m or 250ms"))
}

/// Serde helper: an optional byte size written as a string (`"64MiB"`) or an integer.
pub mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    /// Reads `"64MiB"` or `67108864`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Int(n)) => Ok(Some(n)),
            Some(Raw::Text(s)) => super::parse_bytes(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes the size as an integer number of bytes.
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_some(n),
            None => s.serialize_none(),
        }
    }
}

/// Serde helper: an optional duration written as a string (`"30s"`).
pub mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads `"30s"`, `"5m"`, `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => super::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// Writes the duration in humantime form.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_name_bad_values() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1 GiB"), Ok(1024 * 1024 * 1024));
        let err = parse_bytes("lots").unwrap_err();
        assert!(err.contains("'lots'"), "{err}");
    }

    #[test]
    fn durations_parse_and_name_bad_values() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").unwrap_err().contains("'soon'"));
    }
}
