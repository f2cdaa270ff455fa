//! `BrokerError`: what can go wrong talking to the broker, named so callers can decide between
//! retrying (the connection) and giving up (a bad URL).

use thiserror::Error;

/// A broker failure. Display strings never contain passwords: URLs are redacted first.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The URL could not be used at all.
    #[error("bad broker URL {url}: {reason}")]
    BadUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Connecting failed (Redis down, refused, DNS, TLS).
    #[error("cannot connect to the broker at {url}")]
    Connect {
        /// The URL with its password redacted.
        url: String,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// A command failed; usually the connection dropped and the manager is reconnecting.
    #[error("broker command {op} failed")]
    Command {
        /// Which operation (`fetch`, `finish`, ...).
        op: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
}

impl BrokerError {
    /// Whether waiting and trying again can help (connection trouble) as opposed to a
    /// configuration mistake.
    pub fn is_transient(&self) -> bool {
        !matches!(self, BrokerError::BadUrl { .. })
    }
}

/// Displays an error followed by its sources (`a: b: c`), as `{:#}` does for `anyhow`, for
/// errors that are shared (`Arc`) and so cannot become an `anyhow::Error`.
#[derive(Debug)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
