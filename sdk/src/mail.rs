//! Outbound mail through the host (`mail` capability).
//!
//! The host delivers over SMTP or into an outbox directory, as the operator configured. The
//! component only builds the message; it never opens a socket. Errors convert into
//! [`TaskError`] with `?`: a temporary SMTP failure becomes a retry, a bad address a reject.

use crate::TaskError;

/// One message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Sender; `None` uses the host's configured default sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Reply-To address.
    pub reply_to: Option<String>,
    /// Subject line (no CR or LF: the host refuses header injection).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// Optional HTML alternative.
    pub html: Option<String>,
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// The plugin was not granted `mail`.
    Denied(String),
    /// The message is malformed (bad address, CR/LF in a header).
    Invalid(String),
    /// The server refused it for good (5xx).
    Permanent(String),
    /// Try again later (4xx, connection refused).
    Temporary(String),
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailError::Denied(m) => write!(f, "mail denied: {m}"),
            MailError::Invalid(m) => write!(f, "invalid mail: {m}"),
            MailError::Permanent(m) => write!(f, "mail refused: {m}"),
            MailError::Temporary(m) => write!(f, "mail temporarily failed: {m}"),
        }
    }
}

impl std::error::Error for MailError {}

impl From<MailError> for TaskError {
    fn from(err: MailError) -> Self {
        match err {
            MailError::Temporary(_) => TaskError::retry(err.to_string()),
            MailError::Invalid(_) | MailError::Permanent(_) => TaskError::reject(err.to_string()),
            MailError::Denied(_) => TaskError::fail(err.to_string()),
        }
    }
}

/// Hands a message to the host and returns its Message-ID once accepted.
pub fn send(message: &Message) -> Result<String, MailError> {
    imp::send(message)
}

/// The check the host applies to every header value: no CR or LF (header injection).
pub fn check_header(name: &str, value: &str) -> Result<(), MailError> {
    if value.contains(['\r', '\n']) {
        return Err(MailError::Invalid(format!(
            "{name} contains a line break (header injection refused)"
        )));
    }
    Ok(())
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{MailError, Message};
    use crate::wit::taskbox::task::mail as wit;

    pub fn send(message: &Message) -> Result<String, MailError> {
        let m = wit::Message {
            from: message.from.clone(),
            to: message.to.clone(),
            cc: message.cc.clone(),
            reply_to: message.reply_to.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
            html: message.html.clone(),
        };
        wit::send(&m).map_err(|err| match err {
            wit::MailError::Denied(m) => MailError::Denied(m),
            wit::MailError::Invalid(m) => MailError::Invalid(m),
            wit::MailError::Permanent(m) => MailError::Permanent(m),
            wit::MailError::Temporary(m) => MailError::Temporary(m),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{MailError, Message, check_header};
    use crate::testing::with_state;

    pub fn send(message: &Message) -> Result<String, MailError> {
        check_header("subject", &message.subject)?;
        for addr in message
            .to
            .iter()
            .chain(&message.cc)
            .chain(&message.from)
            .chain(&message.reply_to)
        {
            check_header("address", addr)?;
            if !addr.contains('@') {
                return Err(MailError::Invalid(format!(
                    "'{addr}' is not an e-mail address"
                )));
            }
        }
        if message.to.is_empty() {
            return Err(MailError::Invalid("no recipients".to_string()));
        }
        with_state(|s| {
            s.mail_check()?;
            s.mail.push(message.clone());
            Ok(format!("<native-{}@taskbox.test>", s.mail.len()))
        })
    }
}
