//! The retry decision: given how a run ended and the task type's policy, run again (when) or
//! fail for good.

use std::time::Duration;

use crate::config::RetryPolicy;
use crate::runtime::{SandboxError, TaskError};

/// What to do after a failed run.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Publish a retry after this delay.
    Retry {
        /// Delay before the next attempt.
        after: Duration,
        /// Why, stored with the RETRY state.
        reason: String,
    },
    /// Store FAILURE and dead-letter the message.
    GiveUp,
}

/// Decides for a task that has already been retried `retries` times. A guest's own `Retry`
/// is honoured up to `max_retries`; other failures only when the policy lists their kind;
/// `Reject` never.
pub fn decide(err: &SandboxError, retries: u32, policy: &RetryPolicy, rand_unit: f64) -> Decision {
    if retries >= policy.max_retries {
        return Decision::GiveUp;
    }
    match err {
        SandboxError::Guest(TaskError::Reject { .. }) => Decision::GiveUp,
        SandboxError::Guest(TaskError::Retry { reason, countdown }) => Decision::Retry {
            after: countdown.unwrap_or_else(|| policy.delay(retries, rand_unit)),
            reason: reason.clone(),
        },
        other if policy.retries_on(other.kind()) => Decision::Retry {
            after: policy.delay(retries, rand_unit),
            reason: other.to_string(),
        },
        _ => Decision::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retry_on: &[&str]) -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            jitter: false,
            retry_on: retry_on.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn guest_retry_is_honoured_until_max_retries() {
        let err = SandboxError::Guest(TaskError::Retry {
            reason: "busy".into(),
            countdown: Some(Duration::from_millis(5)),
        });
        assert_eq!(
            decide(&err, 0, &policy(&[]), 0.5),
            Decision::Retry {
                after: Duration::from_millis(5),
                reason: "busy".into()
            }
        );
        assert_eq!(decide(&err, 2, &policy(&[]), 0.5), Decision::GiveUp);
    }

    #[test]
    fn sandbox_errors_retry_only_when_the_policy_says_so() {
        let err = SandboxError::OutOfFuel { budget: 1 };
        assert_eq!(decide(&err, 0, &policy(&[]), 0.5), Decision::GiveUp);
        assert!(matches!(
            decide(&err, 1, &policy(&["OutOfFuel"]), 0.5),
            Decision::Retry { after, .. } if after == Duration::from_secs(2)
        ));
        let reject = SandboxError::Guest(TaskError::Reject {
            message: "bad".into(),
        });
        assert_eq!(
            decide(&reject, 0, &policy(&["Fail"]), 0.5),
            Decision::GiveUp
        );
    }
}
