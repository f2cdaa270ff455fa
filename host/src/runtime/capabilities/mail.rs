//! `mail`: the guest builds a message, the host validates it (addresses, header injection,
//! size) and hands it to a delivery backend: SMTP in production, an outbox directory of `.eml`
//! files in development, or an in-memory capture in tests and `taskbox exec`.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use async_trait::async_trait;

use crate::runtime::bindings::mail::{Host, MailError, Message};
use crate::runtime::state::HostState;

use super::Capability;

/// Largest message body (text plus HTML) accepted.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// Most recipients (to plus cc) on one message.
pub const MAX_RECIPIENTS: usize = 100;

/// A validated message ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The Message-ID the host assigned (with angle brackets).
    pub message_id: String,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Reply-To.
    pub reply_to: Option<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML alternative.
    pub html: Option<String>,
}

impl OutgoingMail {
    /// The message in RFC 5322 form (multipart/alternative when there is HTML).
    pub fn to_rfc5322(&self) -> anyhow::Result<Vec<u8>> {
        use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
        let parse = |addr: &str| -> anyhow::Result<Mailbox> {
            addr.parse::<Mailbox>()
                .with_context(|| format!("'{addr}' is not a valid address"))
        };
        let mut builder = lettre::Message::builder()
            .message_id(Some(self.message_id.clone()))
            .from(parse(&self.from)?)
            .subject(self.subject.clone());
        for to in &self.to {
            builder = builder.to(parse(to)?);
        }
        for cc in &self.cc {
            builder = builder.cc(parse(cc)?);
        }
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(parse(r)?);
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.clone());
        let message = match &self.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        }
        .context("failed to build the message")?;
        Ok(message.formatted())
    }
}

/// A delivery failure, classified so the task can decide between retry and reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Try again later (4xx, connection refused, timeout).
    #[error("temporary delivery failure: {0}")]
    Temporary(String),
    /// The server refused the message for good (5xx).
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Delivers validated messages.
#[async_trait]
pub trait MailBackend: Send + Sync {
    /// The sender used when a message names none (`MAIL_DEFAULT_SEND_FROM`).
    fn default_from(&self) -> Option<String>;
    /// Delivers one message.
    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError>;
}

/// Keeps delivered messages in memory, for tests and `taskbox exec`.
#[derive(Debug, Default)]
pub struct CaptureMail {
    /// Delivered messages, oldest first.
    pub delivered: Mutex<Vec<OutgoingMail>>,
}

#[async_trait]
impl MailBackend for CaptureMail {
    fn default_from(&self) -> Option<String> {
        Some("taskbox@localhost".to_string())
    }

    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(mail.clone());
        Ok(())
    }
}

/// Writes each message as `<message-id>.eml` into a directory (development delivery).
#[derive(Debug)]
pub struct OutboxMail {
    dir: PathBuf,
    default_from: Option<String>,
}

impl OutboxMail {
    /// An outbox in `dir` (created if missing).
    pub fn new(dir: PathBuf, default_from: Option<String>) -> anyhow::Result<OutboxMail> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create mail outbox {}", dir.display()))?;
        Ok(OutboxMail { dir, default_from })
    }
}

#[async_trait]
impl MailBackend for OutboxMail {
    fn default_from(&self) -> Option<String> {
        self.default_from.clone()
    }

    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let bytes = mail
            .to_rfc5322()
            .map_err(|e| DeliveryError::Permanent(format!("{e:#}")))?;
        let name: String = mail
            .message_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .collect();
        let path = self.dir.join(format!("{name}.eml"));
        let tmp = self.dir.join(format!(".{name}.eml.tmp"));
        let write = async {
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        write.await.map_err(|e| {
            DeliveryError::Temporary(format!("failed to write {}: {e}", path.display()))
        })
    }
}

/// Checks one address: a single `local@domain` with no spaces, brackets or line breaks.
pub fn check_address(field: &str, addr: &str) -> Result<(), String> {
    if addr.contains(['\r', '\n']) {
        return Err(format!(
            "{field} contains a line break (header injection refused)"
        ));
    }
    let ok = match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !addr.contains(|c: char| {
                    c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"')
                })
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} '{addr}' is not an e-mail address (expected user@example.com)"
        ))
    }
}

/// Checks a sender that may carry a display name (`Dify <no-reply@dify.ai>`, as Dify's
/// `MAIL_DEFAULT_SEND_FROM` is often written) and returns the bare address.
pub fn check_mailbox<'a>(field: &str, mailbox: &'a str) -> Result<&'a str, String> {
    if mailbox.contains(['\r', '\n']) {
        return Err(format!(
            "{field} contains a line break (header injection refused)"
        ));
    }
    let trimmed = mailbox.trim();
    match (trimmed.rfind('<'), trimmed.strip_suffix('>')) {
        (Some(open), Some(inner)) => {
            let name = trimmed[..open].trim().trim_matches('"');
            if name.contains(['<', '>', '"']) {
                return Err(format!("{field} '{mailbox}' has a malformed display name"));
            }
            let addr = &inner[open + 1..];
            check_address(field, addr)?;
            Ok(addr)
        }
        _ => {
            check_address(field, trimmed)?;
            Ok(trimmed)
        }
    }
}

/// Validates a guest's message and fills in the sender and Message-ID.
pub fn validate(message: Message, default_from: Option<String>) -> Result<OutgoingMail, String> {
    if message.subject.contains(['\r', '\n']) {
        return Err("subject contains a line break (header injection refused)".into());
    }
    if message.to.is_empty() {
        return Err("no recipients: `to` is empty".into());
    }
    if message.to.len() + message.cc.len() > MAX_RECIPIENTS {
        return Err(format!("more than {MAX_RECIPIENTS} recipients"));
    }
    // Addresses the guest chose are checked before anything the host fills in, so an
    // injection attempt is reported as such whatever the configuration.
    for to in &message.to {
        check_address("to", to)?;
    }
    for cc in &message.cc {
        check_address("cc", cc)?;
    }
    if let Some(r) = &message.reply_to {
        check_address("reply-to", r)?;
    }
    if let Some(f) = &message.from {
        check_mailbox("from", f)?;
    }
    let from = message
        .from
        .or(default_from)
        .ok_or("no sender: give `from` or configure MAIL_DEFAULT_SEND_FROM")?;
    let from_addr = check_mailbox("from", &from)?.to_string();
    let body = message.text.len() + message.html.as_ref().map_or(0, String::len);
    if body > MAX_BODY {
        return Err(format!("body is {body} bytes; the limit is {MAX_BODY}"));
    }
    let domain = from_addr
        .rsplit_once('@')
        .map_or("taskbox", |(_, d)| d)
        .to_string();
    Ok(OutgoingMail {
        message_id: format!("<{}@{domain}>", uuid::Uuid::new_v4()),
        from,
        to: message.to,
        cc: message.cc,
        reply_to: message.reply_to,
        subject: message.subject,
        text: message.text,
        html: message.html,
    })
}

impl Host for HostState {
    async fn send(&mut self, message: Message) -> wasmtime::Result<Result<String, MailError>> {
        self.charge_host_call()?;
        if !self.grants.allows(Capability::Mail) {
            let detail = "the plugin was not granted mail";
            self.record_denial("mail", detail);
            return Ok(Err(MailError::Denied(detail.into())));
        }
        let mail = match validate(message, self.backends.mail.default_from()) {
            Ok(mail) => mail,
            Err(reason) => return Ok(Err(MailError::Invalid(reason))),
        };
        match self.backends.mail.deliver(&mail).await {
            Ok(()) => {
                tracing::info!(parent: &self.span, message_id = %mail.message_id, recipients = mail.to.len() + mail.cc.len(), "mail handed to delivery");
                Ok(Ok(mail.message_id))
            }
            Err(DeliveryError::Temporary(m)) => Ok(Err(MailError::Temporary(m))),
            Err(DeliveryError::Permanent(m)) => Ok(Err(MailError::Permanent(m))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, subject: &str) -> Message {
        Message {
            from: None,
            to: vec![to.to_string()],
            cc: vec![],
            reply_to: None,
            subject: subject.to_string(),
            text: "hello".into(),
            html: Some("<p>hello</p>".into()),
        }
    }

    #[test]
    fn a_sender_may_carry_a_display_name() {
        let ok = validate(
            message("a@example.com", "Hi"),
            Some("Dify <no-reply@dify.ai>".to_string()),
        )
        .unwrap();
        assert!(ok.message_id.ends_with("@dify.ai>"), "{}", ok.message_id);
        assert!(ok.to_rfc5322().is_ok());
        assert_eq!(
            check_mailbox("from", "\"Ops\" <ops@x.io>").unwrap(),
            "ops@x.io"
        );
        assert!(check_mailbox("from", "A <b> <c@x.io>").is_err());
        assert!(check_mailbox("from", "A\r\nBcc: e@x.io <c@x.io>").is_err());
    }

    #[test]
    fn header_injection_and_bad_addresses_are_refused() {
        let from = Some("app@example.com".to_string());
        assert!(
            validate(
                message("a@example.com", "Hi\r\nBcc: evil@x.com"),
                from.clone()
            )
            .unwrap_err()
            .contains("line break")
        );
        assert!(
            validate(
                message("a@example.com\nBcc: evil@x.com", "Hi"),
                from.clone()
            )
            .unwrap_err()
            .contains("line break")
        );
        assert!(
            validate(message("not-an-address", "Hi"), from.clone())
                .unwrap_err()
                .contains("not an e-mail address")
        );
        assert!(
            validate(message("a@example.com", "Hi"), None)
                .unwrap_err()
                .contains("no sender")
        );
        let ok = validate(message("a@example.com", "Hi"), from).unwrap();
        assert!(ok.message_id.ends_with("@example.com>"));
    }

    #[tokio::test]
    async fn outbox_writes_a_parseable_multipart_eml() {
        let dir = tempfile::tempdir().unwrap();
        let outbox =
            OutboxMail::new(dir.path().join("out"), Some("app@example.com".into())).unwrap();
        let mail = validate(message("a@example.com", "Grüße"), outbox.default_from()).unwrap();
        outbox.deliver(&mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("out")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(text.contains("To: a@example.com"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains(&mail.message_id), "{text}");
    }
}
