//! SMTP delivery for the worker (`MAIL_TYPE=smtp`): one pooled lettre transport per worker,
//! built from [`MailConfig`], and the classification of SMTP failures into what the task does
//! next: a temporary failure (4xx reply, server down or slow) is retried, a permanent one
//! (5xx reply, a message the client refuses to send) is rejected.
//!
//! The SMTP password lives only inside the transport: it is never logged, and every error
//! message is scrubbed of it before leaving this file.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use base64::Engine as _;
use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport as _, Tokio1Executor};

use crate::config::MailConfig;
use crate::runtime::capabilities::mail::{DeliveryError, MailBackend, OutgoingMail};

/// How long opening the TCP connection may take (lettre applies its timeout to this step only).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one whole send (connect, TLS, login, envelope, data) may take before it counts as
/// a temporary failure. lettre's async client has no read timeout, so without this a server
/// that accepts and then stalls would hold the task until its own timeout killed it; this stays
/// well under the default task timeout so the outcome is a retry.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections kept open to the server at once (one per concurrently sending task).
pub const POOL_SIZE: u32 = 10;
/// An idle pooled connection is closed after this long, before most servers drop it anyway.
pub const POOL_IDLE: Duration = Duration::from_secs(60);

/// How the connection is secured, from `SMTP_USE_TLS` and `SMTP_OPPORTUNISTIC_TLS` (Dify's
/// meaning: TLS alone is implicit TLS, TLS plus opportunistic is STARTTLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP.
    None,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS; the send fails if the server cannot upgrade,
    /// so credentials and mail never go out in clear by accident.
    StartTls,
}

impl TlsMode {
    /// The mode `config` asks for.
    pub fn of(config: &MailConfig) -> TlsMode {
        match (config.smtp_use_tls, config.smtp_opportunistic_tls) {
            (true, false) => TlsMode::Implicit,
            (true, true) => TlsMode::StartTls,
            (false, _) => TlsMode::None,
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
        })
    }
}

/// Delivers mail to an SMTP server through a connection pool shared by every task of the
/// worker, so a burst of mails does not open one connection (and one TLS handshake) each.
pub struct SmtpMail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    default_from: Option<String>,
    send_timeout: Duration,
    /// Strings that must never appear in an error message (the password and its encodings).
    secrets: Vec<String>,
}

// Hand-written: lettre's transport `Debug` would print its connection settings, and this type
// must never be able to leak the credentials through a `{:?}`.
impl fmt::Debug for SmtpMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMail")
            .field("server", &self.server)
            .field("default_from", &self.default_from)
            .finish_non_exhaustive()
    }
}

impl SmtpMail {
    /// Builds the transport from `config` (`MAIL_TYPE=smtp`). No connection is made yet: the
    /// first mail connects, so a worker starts even while the mail server is down.
    ///
    /// Must be called inside a Tokio runtime (the pool runs a clean-up task on it).
    pub fn new(config: &MailConfig) -> anyhow::Result<SmtpMail> {
        let host = config
            .smtp_server
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .context("MAIL_TYPE=smtp needs SMTP_SERVER (the mail server's host name)")?;
        let port = config.port();
        let mode = TlsMode::of(config);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(CONNECT_TIMEOUT))
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_SIZE)
                    .idle_timeout(POOL_IDLE),
            );
        if mode != TlsMode::None {
            let tls = TlsParameters::new(host.to_string()).with_context(|| {
                format!("failed to set up TLS for the SMTP server {host}:{port}")
            })?;
            builder = builder.tls(match mode {
                TlsMode::Implicit => Tls::Wrapper(tls),
                _ => Tls::Required(tls),
            });
        }
        let mut secrets = Vec::new();
        let username = config.smtp_username.as_deref().filter(|u| !u.is_empty());
        match (username, config.smtp_password.as_deref()) {
            (Some(user), password) => {
                let password = password.unwrap_or_default();
                secrets = secret_forms(user, password);
                builder = builder.credentials(Credentials::new(user.to_string(), password.into()));
                if mode == TlsMode::None {
                    tracing::warn!(
                        server = %format_args!("{host}:{port}"),
                        "SMTP authentication without TLS: the credentials cross the network in clear; set SMTP_USE_TLS=true"
                    );
                }
            }
            (None, Some(password)) => {
                // Still scrubbed: a server could echo it back in a reply.
                secrets = secret_forms("", password);
                tracing::warn!(
                    "SMTP_PASSWORD is set but SMTP_USERNAME is not; sending without authentication"
                );
            }
            (None, None) => {}
        }
        tracing::info!(
            server = %format_args!("{host}:{port}"),
            tls = %mode,
            auth = username.is_some(),
            "SMTP mail delivery configured"
        );
        Ok(SmtpMail {
            transport: builder.build(),
            server: format!("{host}:{port}"),
            default_from: config.default_from.clone(),
            send_timeout: SEND_TIMEOUT,
            secrets,
        })
    }

    /// `message` with every secret replaced, so errors are safe to log and store in results.
    fn scrub(&self, message: String) -> String {
        self.secrets.iter().fold(message, |m, secret| {
            if m.contains(secret.as_str()) {
                m.replace(secret.as_str(), "[redacted]")
            } else {
                m
            }
        })
    }
}

#[async_trait]
impl MailBackend for SmtpMail {
    fn default_from(&self) -> Option<String> {
        self.default_from.clone()
    }

    async fn deliver(&self, mail: &OutgoingMail) -> Result<(), DeliveryError> {
        let bytes = mail
            .to_rfc5322()
            .map_err(|e| DeliveryError::Permanent(format!("{e:#}")))?;
        let envelope = envelope(mail).map_err(DeliveryError::Permanent)?;
        let send = self.transport.send_raw(&envelope, &bytes);
        match tokio::time::timeout(self.send_timeout, send).await {
            Err(_) => Err(DeliveryError::Temporary(format!(
                "SMTP server {}: no answer within {}s",
                self.server,
                self.send_timeout.as_secs_f64()
            ))),
            Ok(Ok(_)) => {
                tracing::debug!(server = %self.server, message_id = %mail.message_id, "SMTP server accepted the message");
                Ok(())
            }
            Ok(Err(err)) => {
                let message = self.scrub(format!("SMTP server {}: {err}", self.server));
                Err(match classify(&err) {
                    Class::Temporary => DeliveryError::Temporary(message),
                    Class::Permanent => DeliveryError::Permanent(message),
                })
            }
        }
    }
}

/// The SMTP envelope: the sender and every recipient (to and cc).
fn envelope(mail: &OutgoingMail) -> Result<Envelope, String> {
    let parse = |addr: &str| {
        addr.parse::<Address>()
            .map_err(|e| format!("'{addr}' is not a valid address: {e}"))
    };
    let from = parse(&mail.from)?;
    let to = mail
        .to
        .iter()
        .chain(&mail.cc)
        .map(|a| parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to).map_err(|e| format!("invalid envelope: {e}"))
}

/// Whether a failed send may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Temporary,
    Permanent,
}

/// Only two kinds of failure are permanent: a 5xx reply (the server refused the message, the
/// recipient or the login for good), and lettre refusing to send (e.g. the server lacks an
/// extension the message needs), which a retry of the same message cannot change. Everything
/// else — 4xx replies, refused or dropped connections, timeouts, TLS and protocol trouble — is
/// the server or the network having a bad moment, so the task retries.
fn classify(err: &lettre::transport::smtp::Error) -> Class {
    if err.is_permanent() || err.is_client() {
        Class::Permanent
    } else {
        Class::Temporary
    }
}

/// The forms a password may take on the wire: as is, base64 (AUTH LOGIN) and the AUTH PLAIN
/// token. Empty strings are left out (they would match everywhere).
fn secret_forms(user: &str, password: &str) -> Vec<String> {
    if password.is_empty() {
        return Vec::new();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        password.to_string(),
        b64.encode(password),
        b64.encode(format!("\0{user}\0{password}")),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// How the scripted server answers RCPT TO and the end of DATA.
    #[derive(Clone, Copy)]
    struct Script {
        rcpt: &'static str,
        data_end: &'static str,
    }

    const ACCEPT: Script = Script {
        rcpt: "250 2.1.5 ok",
        data_end: "250 2.0.0 queued",
    };

    /// An SMTP server speaking just enough of the protocol, one task per connection (the
    /// pool may open a second connection while the first is being recycled); returns its port
    /// and the DATA payloads it accepted.
    async fn fake_server(script: Script) -> (u16, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, script, store.clone()));
            }
        });
        (port, received)
    }

    async fn serve(stream: tokio::net::TcpStream, script: Script, store: Arc<Mutex<Vec<String>>>) {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        if write.write_all(b"220 fake ESMTP\r\n").await.is_err() {
            return;
        }
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" => "250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".to_string(),
                "AUTH" => format!("535 5.7.8 refused: {line} s3cret-pw"),
                "RCPT" => script.rcpt.to_string(),
                "DATA" => {
                    if write.write_all(b"354 go ahead\r\n").await.is_err() {
                        return;
                    }
                    let mut data = String::new();
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                        data.push_str(&l);
                        data.push('\n');
                    }
                    if script.data_end.starts_with('2') {
                        store.lock().unwrap().push(data);
                    }
                    script.data_end.to_string()
                }
                "QUIT" => "221 bye".to_string(),
                _ => "250 ok".to_string(),
            };
            if write
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .is_err()
                || verb == "QUIT"
            {
                return;
            }
        }
    }

    fn config(port: u16) -> MailConfig {
        MailConfig {
            kind: Some("smtp".into()),
            smtp_server: Some("127.0.0.1".into()),
            smtp_port: Some(port),
            default_from: Some("app@example.com".into()),
            ..MailConfig::default()
        }
    }

    fn mail() -> OutgoingMail {
        OutgoingMail {
            message_id: "<1@example.com>".into(),
            from: "app@example.com".into(),
            to: vec!["ada@example.com".into()],
            cc: vec![],
            reply_to: None,
            subject: "Hello".into(),
            text: "plain".into(),
            html: Some("<p>html</p>".into()),
        }
    }

    #[tokio::test]
    async fn accepted_mail_reaches_the_server_through_the_pool() {
        let (port, received) = fake_server(ACCEPT).await;
        let smtp = SmtpMail::new(&config(port)).unwrap();
        assert_eq!(smtp.default_from().as_deref(), Some("app@example.com"));
        smtp.deliver(&mail()).await.unwrap();
        smtp.deliver(&mail()).await.unwrap();
        let received = received.lock().unwrap().clone();
        assert_eq!(received.len(), 2);
        assert!(received[0].contains("Subject: Hello"), "{}", received[0]);
        assert!(received[0].contains("multipart/alternative"));
    }

    #[tokio::test]
    async fn replies_are_classified_by_their_code() {
        let (port, received) = fake_server(Script {
            rcpt: "250 ok",
            data_end: "451 4.3.0 try again later",
        })
        .await;
        let err = SmtpMail::new(&config(port))
            .unwrap()
            .deliver(&mail())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Temporary(m) if m.contains("451") && m.contains("try again later")),
            "{err:?}"
        );
        assert!(received.lock().unwrap().is_empty());

        let (port, _) = fake_server(Script {
            rcpt: "550 5.1.1 no such user",
            data_end: "250 ok",
        })
        .await;
        let err = SmtpMail::new(&config(port))
            .unwrap()
            .deliver(&mail())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Permanent(m) if m.contains("550") && m.contains("no such user")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_a_temporary_failure() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = SmtpMail::new(&config(port))
            .unwrap()
            .deliver(&mail())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Temporary(m) if m.contains(&format!("127.0.0.1:{port}"))),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_password_never_appears_in_errors_or_debug_output() {
        // This server echoes the AUTH line back in its refusal, as a careless one might.
        let (port, _) = fake_server(ACCEPT).await;
        let mut cfg = config(port);
        cfg.smtp_username = Some("user".into());
        cfg.smtp_password = Some("s3cret-pw".into());
        let smtp = SmtpMail::new(&cfg).unwrap();
        assert!(!format!("{smtp:?}").contains("s3cret"));
        let err = smtp.deliver(&mail()).await.unwrap_err();
        let DeliveryError::Permanent(message) = &err else {
            panic!("a 535 login refusal is permanent: {err:?}");
        };
        assert!(
            message.contains("535") && message.contains("[redacted]"),
            "{message}"
        );
        let plain_token = secret_forms("user", "s3cret-pw")[2].clone();
        assert!(!message.contains(&plain_token), "{message}");
        assert!(!message.contains("s3cret-pw"), "{message}");
    }

    #[tokio::test]
    async fn a_server_that_accepts_and_stalls_is_a_temporary_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts connections and never says a word.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let mut smtp = SmtpMail::new(&config(port)).unwrap();
        smtp.send_timeout = Duration::from_millis(300);
        let err = smtp.deliver(&mail()).await.unwrap_err();
        assert!(
            matches!(&err, DeliveryError::Temporary(m) if m.contains("no answer within 0.3s")),
            "{err:?}"
        );
        silent.abort();
    }

    #[test]
    fn tls_mode_follows_difys_two_flags() {
        let mut c = MailConfig::default();
        assert_eq!(TlsMode::of(&c), TlsMode::None);
        c.smtp_use_tls = true;
        assert_eq!(TlsMode::of(&c), TlsMode::Implicit);
        c.smtp_opportunistic_tls = true;
        assert_eq!(TlsMode::of(&c), TlsMode::StartTls);
        c.smtp_use_tls = false;
        assert_eq!(TlsMode::of(&c), TlsMode::None);
    }

    #[tokio::test]
    async fn missing_server_is_a_start_up_error() {
        let err = SmtpMail::new(&MailConfig {
            kind: Some("smtp".into()),
            ..MailConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("SMTP_SERVER"), "{err}");
    }
}
