//! The deployment's mails: which templates exist, which values each takes ([`Spec`]), which
//! languages they are written in, and their copy. Both languages of a sentence sit side by
//! side (`t(en, zh)`) so a reviewer can see that they say the same thing.
//!
//! Copy is plain text with `{name}` placeholders; `{app}` is the product name. Layout and
//! escaping are [`crate::render`]'s business.

use crate::render::{self, Block, Layout, Rendered};
use crate::values::{APPLICATION_TITLE, Spec, Values};

/// The product name used when the call gives no `application_title`.
pub const DEFAULT_APPLICATION_TITLE: &str = "Dify";

/// A mail the component knows how to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A workspace owner invited someone.
    InviteMember,
    /// A password reset: a code, a link, or both.
    ResetPassword,
    /// A one-time sign-in code.
    EmailCodeLogin,
    /// Unused documents were disabled.
    DocumentCleanNotify,
    /// A Celery queue is above its alert threshold.
    QueueMonitorAlert,
    /// A Celery queue is back below its threshold.
    QueueMonitorRecovery,
}

impl Template {
    /// Every template, in the order error messages list them.
    pub const ALL: [Template; 6] = [
        Template::InviteMember,
        Template::ResetPassword,
        Template::EmailCodeLogin,
        Template::DocumentCleanNotify,
        Template::QueueMonitorAlert,
        Template::QueueMonitorRecovery,
    ];

    /// The name callers use.
    pub fn name(self) -> &'static str {
        match self {
            Template::InviteMember => "invite_member",
            Template::ResetPassword => "reset_password",
            Template::EmailCodeLogin => "email_code_login",
            Template::DocumentCleanNotify => "document_clean_notify",
            Template::QueueMonitorAlert => "queue_monitor_alert",
            Template::QueueMonitorRecovery => "queue_monitor_recovery",
        }
    }

    /// The template called `name` (exact match: template names are identifiers, not prose).
    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The values the template takes.
    pub fn spec(self) -> Spec {
        const NONE: &[&str] = &[];
        match self {
            Template::InviteMember => Spec {
                required: &["inviter_name", "workspace_name", "url"],
                one_of: NONE,
                optional: NONE,
                lists: NONE,
            },
            Template::ResetPassword => Spec {
                required: NONE,
                one_of: &["code", "url"],
                optional: NONE,
                lists: NONE,
            },
            Template::EmailCodeLogin => Spec {
                required: &["code"],
                one_of: NONE,
                optional: NONE,
                lists: NONE,
            },
            Template::DocumentCleanNotify => Spec {
                required: &["user_name", "url"],
                one_of: &["dataset_names", "documents"],
                optional: NONE,
                lists: &["dataset_names", "documents"],
            },
            Template::QueueMonitorAlert => Spec {
                required: &["queue_name", "queue_length", "threshold", "alert_time"],
                one_of: NONE,
                optional: NONE,
                lists: NONE,
            },
            Template::QueueMonitorRecovery => Spec {
                required: &["queue_name", "queue_length", "threshold"],
                one_of: NONE,
                optional: NONE,
                lists: NONE,
            },
        }
    }
}

/// A language the copy is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English, the fallback.
    EnUs,
    /// Simplified Chinese.
    ZhHans,
}

impl Language {
    /// The tag reported in the task's output (Dify's interface-language names).
    pub fn tag(self) -> &'static str {
        match self {
            Language::EnUs => "en-US",
            Language::ZhHans => "zh-Hans",
        }
    }

    /// The language a caller's tag asks for. Case and `_`/`-` do not matter, and the usual
    /// spellings of the same language are accepted (`en`, `en-GB`; `zh`, `zh-CN`, `zh-SG`);
    /// `None` means the caller should get English with a note saying so.
    pub fn resolve(requested: &str) -> Option<Language> {
        let tag = requested.trim().replace('_', "-").to_ascii_lowercase();
        match tag.as_str() {
            "en" => Some(Language::EnUs),
            "zh" | "zh-hans" | "zh-cn" | "zh-sg" => Some(Language::ZhHans),
            t if t.starts_with("en-") => Some(Language::EnUs),
            t if t.starts_with("zh-hans-") => Some(Language::ZhHans),
            _ => None,
        }
    }

    fn layout(self) -> Layout<'static> {
        match self {
            Language::EnUs => Layout {
                html_lang: "en",
                link_hint: "If the button does not work, copy this link into your browser:",
                colon: ": ",
            },
            Language::ZhHans => Layout {
                html_lang: "zh-Hans",
                link_hint: "如果按钮无法点击，请将以下链接复制到浏览器中打开：",
                colon: "：",
            },
        }
    }
}

/// Writes `template` in `language` with `values` (already checked against the template's
/// [`Spec`], so every required value is present).
pub fn compose(template: Template, language: Language, values: &Values) -> Rendered {
    let app = values
        .get(APPLICATION_TITLE)
        .unwrap_or(DEFAULT_APPLICATION_TITLE);
    let lookup = |name: &str| match name {
        "app" => Some(app),
        other => values.get(other),
    };
    let en = language == Language::EnUs;
    // Picks the sentence in the mail's language and fills its placeholders.
    let t = |en_text: &str, zh_text: &str| render::fill(if en { en_text } else { zh_text }, lookup);
    // A value the spec guarantees; empty only if the spec and this copy disagree (a test
    // renders every template to catch that).
    let value = |name: &str| values.get(name).unwrap_or_default().to_string();
    let para = |en_text: &str, zh_text: &str| Block::Para(t(en_text, zh_text));

    let (subject, blocks) = match template {
        Template::InviteMember => (
            t(
                "{inviter_name} invited you to join {workspace_name} on {app}",
                "{inviter_name} 邀请您加入 {app} 工作空间「{workspace_name}」",
            ),
            vec![
                para("Hello,", "您好，"),
                para(
                    "{inviter_name} has invited you to join the workspace {workspace_name} on \
                     {app}. Accept the invitation to start working with your team.",
                    "{inviter_name} 邀请您加入 {app} 上的工作空间「{workspace_name}」。\
                     接受邀请后即可与团队成员一起协作。",
                ),
                Block::Link {
                    label: t("Accept invitation", "接受邀请"),
                    url: value("url"),
                },
                para(
                    "The invitation link works once. If you were not expecting this \
                     invitation, you can safely ignore this email.",
                    "该邀请链接仅能使用一次。如果您并未预期收到此邀请，可以放心忽略本邮件。",
                ),
            ],
        ),
        Template::ResetPassword => {
            let mut blocks = vec![
                para("Hello,", "您好，"),
                para(
                    "We received a request to reset the password of your {app} account.",
                    "我们收到了重置您 {app} 账户密码的请求。",
                ),
            ];
            if let Some(code) = values.get("code") {
                blocks.push(para(
                    "Enter this verification code to continue:",
                    "请输入以下验证码以继续：",
                ));
                blocks.push(Block::Code(code.to_string()));
            }
            if let Some(url) = values.get("url") {
                blocks.push(Block::Link {
                    label: t("Choose a new password", "设置新密码"),
                    url: url.to_string(),
                });
            }
            blocks.push(para(
                "For your security, this request expires soon. If you did not ask for it, \
                 ignore this email: your password stays as it is.",
                "为了您的账户安全，该请求将在短时间内失效。如果这不是您本人的操作，\
                 请忽略本邮件，您的密码不会被更改。",
            ));
            (
                t("Reset your {app} password", "重置您的 {app} 密码"),
                blocks,
            )
        }
        Template::EmailCodeLogin => (
            t("Your {app} sign-in code", "您的 {app} 登录验证码"),
            vec![
                para("Hello,", "您好，"),
                para(
                    "Use this code to sign in to {app}:",
                    "请使用以下验证码登录 {app}：",
                ),
                Block::Code(value("code")),
                para(
                    "The code expires shortly. Never share it with anyone, including people \
                     who say they work for {app}.",
                    "验证码将在短时间内失效。请勿将其告诉任何人，包括自称 {app} 工作人员的人。",
                ),
                para(
                    "If you did not try to sign in, you can ignore this email.",
                    "如果这不是您本人的登录操作，请忽略本邮件。",
                ),
            ],
        ),
        Template::DocumentCleanNotify => {
            let mut blocks = vec![
                para("Hello {user_name},", "{user_name}，您好："),
                para(
                    "To save resources, {app} automatically disables documents that have not \
                     been used for a while.",
                    "为节省资源，{app} 会自动停用长时间未使用的文档。",
                ),
            ];
            if let Some(datasets) = values.list("dataset_names") {
                blocks.push(para(
                    "Knowledge bases with disabled documents:",
                    "有文档被停用的知识库：",
                ));
                blocks.push(Block::List(datasets.to_vec()));
            }
            if let Some(documents) = values.list("documents") {
                blocks.push(para("Disabled documents:", "已停用的文档："));
                blocks.push(Block::List(documents.to_vec()));
            }
            blocks.push(para(
                "You can enable them again at any time from the knowledge base page.",
                "您可以随时在知识库页面重新启用这些文档。",
            ));
            blocks.push(Block::Link {
                label: t("Open knowledge bases", "查看知识库"),
                url: value("url"),
            });
            (
                t(
                    "Some documents in your {app} knowledge bases were disabled",
                    "您在 {app} 知识库中的部分文档已被停用",
                ),
                blocks,
            )
        }
        Template::QueueMonitorAlert => (
            t(
                "[Alert] Queue {queue_name} has {queue_length} tasks waiting",
                "【告警】队列 {queue_name} 积压 {queue_length} 个任务",
            ),
            vec![
                para(
                    "The queue {queue_name} has more waiting tasks than its alert threshold.",
                    "队列 {queue_name} 中等待处理的任务数已超过告警阈值。",
                ),
                Block::Facts(vec![
                    (t("Queue", "队列"), value("queue_name")),
                    (t("Waiting tasks", "等待任务数"), value("queue_length")),
                    (t("Threshold", "告警阈值"), value("threshold")),
                    (t("Detected at", "检测时间"), value("alert_time")),
                ]),
                para(
                    "Check that the workers serving this queue are running and keeping up.",
                    "请检查处理该队列的 worker 是否正常运行，以及处理能力是否足够。",
                ),
            ],
        ),
        Template::QueueMonitorRecovery => (
            t(
                "[Recovered] Queue {queue_name} is back below its threshold",
                "【已恢复】队列 {queue_name} 已回落至阈值以下",
            ),
            vec![
                para(
                    "The queue {queue_name} is back below its alert threshold.",
                    "队列 {queue_name} 中等待处理的任务数已回落至告警阈值以下。",
                ),
                Block::Facts(vec![
                    (t("Queue", "队列"), value("queue_name")),
                    (t("Waiting tasks", "等待任务数"), value("queue_length")),
                    (t("Threshold", "告警阈值"), value("threshold")),
                ]),
                para("No action is needed.", "无需进一步处理。"),
            ],
        ),
    };
    let footer = t(
        "This email was sent automatically by {app}. Please do not reply.",
        "此邮件由 {app} 自动发送，请勿直接回复。",
    );
    render::render(language.layout(), &subject, &blocks, &footer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags_resolve_case_and_separator_insensitively() {
        for tag in ["en-US", "en_us", "EN", "en-GB"] {
            assert_eq!(Language::resolve(tag), Some(Language::EnUs), "{tag}");
        }
        for tag in ["zh-Hans", "zh_hans", "zh", "zh-CN", "zh-Hans-CN"] {
            assert_eq!(Language::resolve(tag), Some(Language::ZhHans), "{tag}");
        }
        for tag in ["fr-FR", "zh-Hant", "zh-TW", "", "english"] {
            assert_eq!(Language::resolve(tag), None, "{tag}");
        }
    }

    #[test]
    fn template_names_round_trip() {
        for template in Template::ALL {
            assert_eq!(Template::from_name(template.name()), Some(template));
        }
        assert_eq!(Template::from_name("Invite_Member"), None);
    }
}
