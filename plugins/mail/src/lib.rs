//! The built-in `mail` component: `mail.send(template, to, language="en-US", **values)` (queue
//! `mail`) writes one of the deployment's mails (see [`templates`]) in the caller's language
//! and hands it to the host for delivery. This file binds the call and reports the outcome;
//! [`values`] checks the values, [`templates`] holds the copy and [`render`] the layout.
//!
//! Failures map onto the retry decision: a bad call (unknown template, missing or unknown
//! value, bad address) is a reject; a temporary delivery failure (SMTP 4xx, server down) is a
//! retry; a permanent one (5xx) is a reject.

pub mod render;
pub mod templates;
pub mod values;

use serde::Serialize;
use taskbox_sdk::mail::{self, Message};
use taskbox_sdk::{Kwargs, TaskError, Value, export_plugin, log, task};

use templates::{Language, Template};

/// What `mail.send` returns once the host accepted the message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Sent {
    /// The template written.
    pub template: String,
    /// The language it was written in (`en-US` when the requested one is not available).
    pub language: String,
    /// The recipients, as given (duplicates dropped).
    pub to: Vec<String>,
    /// The Message-ID the host assigned, to find the mail in the server's logs.
    pub message_id: String,
    /// The subject line sent.
    pub subject: String,
    /// Set when something was not as asked, e.g. the requested language fell back to English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Writes and sends one of the deployment's mails.
#[task(name = "mail.send")]
fn send(
    template: String,
    to: Value,
    #[default("en-US")] language: String,
    #[kwargs] values: Kwargs,
) -> Result<Sent, TaskError> {
    let Some(kind) = Template::from_name(&template) else {
        let known: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
        return Err(TaskError::reject(format!(
            "unknown template '{template}' (known: {})",
            known.join(", ")
        )));
    };
    let to = recipients(to).map_err(TaskError::reject)?;
    let values = values::parse(kind.name(), &kind.spec(), values).map_err(TaskError::reject)?;
    let (lang, note) = match Language::resolve(&language) {
        Some(lang) => (lang, None),
        None => (
            Language::EnUs,
            Some(format!(
                "language '{language}' is not available (available: en-US, zh-Hans); sent in en-US"
            )),
        ),
    };
    let rendered = templates::compose(kind, lang, &values);
    let message = Message {
        to: to.clone(),
        subject: rendered.subject.clone(),
        text: rendered.text,
        html: Some(rendered.html),
        ..Message::default()
    };
    let message_id = mail::send(&message)?;
    // No values in the log: codes and links in these mails are credentials.
    log::log(
        log::Level::Info,
        "mail sent",
        &[
            ("template", kind.name()),
            ("language", lang.tag()),
            ("recipients", &to.len().to_string()),
            ("message_id", &message_id),
        ],
    );
    Ok(Sent {
        template: kind.name().to_string(),
        language: lang.tag().to_string(),
        to,
        message_id,
        subject: rendered.subject,
        note,
    })
}

/// `to` as a list: one address or a list of them, trimmed, duplicates (ignoring case) dropped.
/// Whether each is a valid address is the host's check, which every mail goes through.
fn recipients(to: Value) -> Result<Vec<String>, String> {
    const EXPECTED: &str = "'to' must be an e-mail address or a list of e-mail addresses";
    let items = match to {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err(EXPECTED.to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(EXPECTED.to_string()),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let addr = item.trim();
        if addr.is_empty() {
            return Err("'to' contains an empty address".to_string());
        }
        if !out.iter().any(|seen| seen.eq_ignore_ascii_case(addr)) {
            out.push(addr.to_string());
        }
    }
    if out.is_empty() {
        return Err("'to' must name at least one recipient".to_string());
    }
    Ok(out)
}

export_plugin!(send);

#[cfg(test)]
mod tests {
    use taskbox_sdk::json;
    use taskbox_sdk::testing::{self, call};

    use super::*;

    /// A full set of values for each template.
    fn sample(template: Template) -> Value {
        match template {
            Template::InviteMember => json!({
                "inviter_name": "Grace",
                "workspace_name": "Research",
                "url": "https://app.example.com/activate?token=abc",
            }),
            Template::ResetPassword => {
                json!({"code": "481516", "url": "https://app.example.com/reset?t=1"})
            }
            Template::EmailCodeLogin => json!({"code": "2342"}),
            Template::DocumentCleanNotify => json!({
                "user_name": "Ada",
                "dataset_names": ["Handbook", "FAQ"],
                "documents": ["old-notes.pdf"],
                "url": "https://app.example.com/datasets",
            }),
            Template::QueueMonitorAlert => json!({
                "queue_name": "dataset",
                "queue_length": 1500,
                "threshold": 200,
                "alert_time": "2025-01-02 03:04:05",
            }),
            Template::QueueMonitorRecovery => json!({
                "queue_name": "dataset",
                "queue_length": 12,
                "threshold": 200,
            }),
        }
    }

    fn send_call(kwargs: Value) -> Result<Value, TaskError> {
        call(TASKBOX_TASKS, "mail.send", json!([]), kwargs)
    }

    fn with(base: Value, extra: Value) -> Value {
        let mut out = base;
        if let (Some(out), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
            out.extend(extra.clone());
        }
        out
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        for template in Template::ALL {
            for (lang, marker) in [("en-US", "Dify"), ("zh-Hans", "此邮件由")] {
                testing::reset();
                let kwargs = with(
                    sample(template),
                    json!({"template": template.name(), "to": "ada@example.com", "language": lang}),
                );
                let out = send_call(kwargs).unwrap_or_else(|e| panic!("{template:?} {lang}: {e}"));
                assert_eq!(out["template"], template.name());
                assert_eq!(out["language"], lang);
                assert_eq!(out["to"], json!(["ada@example.com"]));
                assert!(out.get("note").is_none());
                let sent = testing::sent_mail();
                assert_eq!(sent.len(), 1);
                let mail = &sent[0];
                assert_eq!(out["message_id"], "<native-1@taskbox.test>");
                assert_eq!(out["subject"], mail.subject.as_str());
                let html = mail.html.as_deref().unwrap_or_default();
                for part in [&mail.subject, &mail.text, &html.to_string()] {
                    assert!(
                        !part.contains('{'),
                        "{template:?} {lang}: unfilled placeholder in {part}"
                    );
                }
                assert!(mail.text.contains(marker), "{template:?} {lang}");
                assert!(html.contains(marker), "{template:?} {lang}");
                assert!(html.starts_with("<!DOCTYPE html>"));
                if lang == "zh-Hans" {
                    assert!(html.contains("<html lang=\"zh-Hans\">"));
                    assert!(!mail.subject.is_ascii(), "{}", mail.subject);
                }
            }
        }
    }

    #[test]
    fn invite_member_carries_its_values_into_every_part() {
        let out = send_call(with(
            sample(Template::InviteMember),
            json!({"template": "invite_member", "to": ["ada@example.com"]}),
        ))
        .unwrap();
        assert_eq!(out["subject"], "Grace invited you to join Research on Dify");
        let mail = &testing::sent_mail()[0];
        assert!(mail.text.contains("Grace has invited you"));
        assert!(
            mail.text
                .contains("https://app.example.com/activate?token=abc")
        );
        let html = mail.html.as_deref().unwrap_or_default();
        assert!(html.contains("href=\"https://app.example.com/activate?token=abc\""));
        assert!(html.contains("Accept invitation"));
    }

    #[test]
    fn values_are_html_escaped_in_the_html_part_only() {
        let out = send_call(with(
            sample(Template::InviteMember),
            json!({
                "template": "invite_member",
                "to": "ada@example.com",
                "workspace_name": "<script>alert('x')</script>",
                "application_title": "Acme & Co",
            }),
        ))
        .unwrap();
        let mail = &testing::sent_mail()[0];
        let html = mail.html.as_deref().unwrap_or_default();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(html.contains("Acme &amp; Co"));
        assert!(mail.text.contains("<script>alert('x')</script>"));
        assert_eq!(
            out["subject"],
            "Grace invited you to join <script>alert('x')</script> on Acme & Co"
        );
    }

    #[test]
    fn a_line_break_in_a_subject_value_cannot_inject_a_header() {
        let out = send_call(with(
            sample(Template::InviteMember),
            json!({
                "template": "invite_member",
                "to": "ada@example.com",
                "inviter_name": "Eve\r\nBcc: victim@example.net\r\n\r\nbody",
            }),
        ))
        .unwrap();
        let subject = out["subject"].as_str().unwrap_or_default();
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
        assert_eq!(
            subject,
            "Eve Bcc: victim@example.net body invited you to join Research on Dify"
        );
        let mail = &testing::sent_mail()[0];
        assert_eq!(mail.subject, subject);
        assert_eq!(mail.to, ["ada@example.com"]);
        assert!(mail.cc.is_empty());
    }

    #[test]
    fn missing_unknown_and_malformed_values_are_rejects() {
        let reject = |kwargs: Value| match send_call(kwargs) {
            Err(TaskError::Reject(m)) => m,
            other => panic!("expected a reject, got {other:?}"),
        };
        let m = reject(json!({"template": "invite_member", "to": "a@example.com",
            "inviter_name": "G", "url": "https://x.test"}));
        assert!(m.contains("missing required value 'workspace_name'"), "{m}");
        let m = reject(json!({"template": "email_code_login", "to": "a@example.com"}));
        assert!(m.contains("'code'"), "{m}");
        let m = reject(json!({"template": "reset_password", "to": "a@example.com"}));
        assert!(m.contains("'code' or 'url'"), "{m}");
        let m = reject(
            json!({"template": "email_code_login", "to": "a@example.com",
            "code": "1", "cod": "2"}),
        );
        assert!(m.contains("does not take the value 'cod'"), "{m}");
        let m = reject(json!({"template": "welcome", "to": "a@example.com"}));
        assert!(
            m.contains("unknown template 'welcome'")
                && m.contains("invite_member, reset_password, email_code_login"),
            "{m}"
        );
        let m = reject(json!({"template": "email_code_login", "to": [], "code": "1"}));
        assert!(m.contains("at least one recipient"), "{m}");
        let m = reject(json!({"template": "email_code_login", "to": 5, "code": "1"}));
        assert!(m.contains("'to' must be"), "{m}");
        let m = reject(json!({"template": "email_code_login", "to": "nobody", "code": "1"}));
        assert!(m.contains("not an e-mail address"), "{m}");
        let m = reject(json!({"template": "reset_password", "to": "a@example.com",
            "url": "javascript:alert(1)"}));
        assert!(m.contains("http:// or https://"), "{m}");
        let m = reject(json!({"to": "a@example.com"}));
        assert!(m.contains("missing required argument 'template'"), "{m}");
        assert!(testing::sent_mail().is_empty());
    }

    #[test]
    fn unknown_language_falls_back_to_english_with_a_note() {
        let out = send_call(
            json!({"template": "email_code_login", "to": "a@example.com",
            "code": "1234", "language": "fr-FR"}),
        )
        .unwrap();
        assert_eq!(out["language"], "en-US");
        assert!(
            out["note"].as_str().unwrap_or_default().contains("'fr-FR'"),
            "{out}"
        );
        assert_eq!(out["subject"], "Your Dify sign-in code");
        let out = send_call(
            json!({"template": "email_code_login", "to": "a@example.com",
            "code": "1234", "language": "zh_CN"}),
        )
        .unwrap();
        assert_eq!(out["language"], "zh-Hans");
        assert_eq!(out["subject"], "您的 Dify 登录验证码");
    }

    #[test]
    fn positional_call_and_recipient_lists_work() {
        let out = call(
            TASKBOX_TASKS,
            "mail.send",
            json!([
                "email_code_login",
                ["a@example.com", " A@example.com ", "b@example.com"],
                "zh-Hans"
            ]),
            json!({"code": "9876"}),
        )
        .unwrap();
        assert_eq!(out["to"], json!(["a@example.com", "b@example.com"]));
        let mail = &testing::sent_mail()[0];
        assert_eq!(mail.to, ["a@example.com", "b@example.com"]);
        assert!(mail.text.contains("9876"));
    }

    #[test]
    fn document_clean_notify_lists_datasets_and_documents() {
        send_call(with(
            sample(Template::DocumentCleanNotify),
            json!({"template": "document_clean_notify", "to": "ada@example.com"}),
        ))
        .unwrap();
        let mail = &testing::sent_mail()[0];
        assert!(mail.text.contains("  - Handbook\n  - FAQ"), "{}", mail.text);
        assert!(mail.text.contains("  - old-notes.pdf"), "{}", mail.text);
        let html = mail.html.as_deref().unwrap_or_default();
        assert_eq!(html.matches("<li ").count(), 3, "{html}");
    }

    #[test]
    fn queue_alert_facts_use_each_languages_punctuation() {
        for (lang, line) in [
            ("en-US", "Waiting tasks: 1500"),
            ("zh-Hans", "等待任务数：1500"),
        ] {
            testing::reset();
            let out = send_call(with(
                sample(Template::QueueMonitorAlert),
                json!({"template": "queue_monitor_alert", "to": "ops@example.com", "language": lang}),
            ))
            .unwrap();
            let mail = &testing::sent_mail()[0];
            assert!(mail.text.contains(line), "{}", mail.text);
            let html = mail.html.as_deref().unwrap_or_default();
            assert!(html.contains(">1500</td>"), "{html}");
            assert!(out["subject"].as_str().unwrap_or_default().contains("1500"));
        }
    }

    #[test]
    fn denied_mail_is_an_error_and_nothing_is_sent() {
        testing::deny_mail();
        let err = send_call(
            json!({"template": "email_code_login", "to": "a@example.com",
            "code": "1234"}),
        )
        .unwrap_err();
        assert!(
            matches!(&err, TaskError::Fail(m) if m.contains("mail denied")),
            "{err:?}"
        );
        assert!(testing::sent_mail().is_empty());
    }
}
