//! Celery protocol v2 messages on kombu's Redis transport: the pure codec, with no I/O.
//!
//! This module owns the bytes of one Redis list element. [`decode`] turns a popped element into
//! a [`TaskMessage`], or into a [`DecodeError`] whose reason can go to the dead-letter list
//! next to the raw message. [`encode`], [`retry_of`], [`next_chain_step`], [`callbacks`] and
//! [`redelivered`] build the envelopes the worker publishes itself. Celery 5.6/5.7 clients and
//! workers cannot tell these apart from their own: same keys in the same order, the same header
//! set, and Python's `json.dumps` spacing. It also owns the priority list names (`queue_key`).
//! The spec is `shared/reference/celery-wire.md`; §n references below point into it.

use std::io::Read;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// kombu's separator between a queue name and its priority step (`Channel.sep`). Redis keys
/// for priorities 3-9 contain it, so anything that names lists must use [`queue_key`].
pub const SEP: &str = "\x06\x16";

/// kombu's priority buckets (`PRIORITY_STEPS`): each message lands in the list of the largest
/// step that is not above its priority, and lower steps are consumed first.
pub const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// Largest body accepted after decompression. A compressed body that inflates past this is
/// refused as [`DecodeErrorKind::BadBody`], so a zip bomb cannot exhaust worker memory.
pub const MAX_DECOMPRESSED_BODY: usize = 64 * 1024 * 1024;

/// How many characters of an offending value an error reason quotes.
const PREVIEW_CHARS: usize = 100;

/// Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize` default.
const REPR_MAX_CHARS: usize = 1024;

/// Redis list key for a queue at a message priority (kombu's `_q_for_pri`). The priority is
/// clamped to 0..=9, and step 0 is the plain queue name, so producers and consumers agree on
/// which of the four lists a message lives in.
pub fn queue_key(queue: &str, priority: u8) -> String {
    let priority = priority.min(9);
    let step = PRIORITY_STEPS
        .iter()
        .copied()
        .filter(|step| *step <= priority)
        .max()
        .unwrap_or(0);
    if step == 0 {
        queue.to_owned()
    } else {
        format!("{queue}{SEP}{step}")
    }
}

/// Queue name from a list key returned by BRPOP, with the `SEP`+digits priority suffix
/// stripped. Keys without such a suffix are returned unchanged.
pub fn queue_of_key(key: &str) -> &str {
    if let Some(at) = key.rfind(SEP) {
        let suffix = &key[at + SEP.len()..];
        if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
            return &key[..at];
        }
    }
    key
}

/// A Celery canvas signature in dict form, as found in `embed.chain`, `callbacks` and
/// `errbacks`. Unknown keys are kept in `extra` so that re-publishing loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Registered task name to run.
    pub task: String,
    /// Positional arguments; the parent's result is prepended unless `immutable`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub kwargs: Map<String, Value>,
    /// Publish options (`task_id`, `queue`, `link`, `group_id`, `countdown`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: Map<String, Value>,
    /// `None` for a plain task; `"chain"`, `"group"` or `"chord"` for nested canvases.
    #[serde(default)]
    pub subtask_type: Option<String>,
    /// `.si()`: the parent's return value is not prepended.
    #[serde(default, deserialize_with = "null_as_default")]
    pub immutable: bool,
    /// Any other keys (e.g. `chord_size`), passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The third element of the body: the canvas work attached to the task. `None` fields are
/// written as JSON `null`, exactly as Celery writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embed {
    /// `link=`: signatures applied with the result prepended on success.
    #[serde(default)]
    pub callbacks: Option<Vec<Signature>>,
    /// `link_error=`: signatures called on failure.
    #[serde(default)]
    pub errbacks: Option<Vec<Signature>>,
    /// Remaining chain in reverse order: the last element runs next.
    #[serde(default)]
    pub chain: Option<Vec<Signature>>,
    /// Chord callback signature, on chord header tasks.
    #[serde(default)]
    pub chord: Option<Value>,
    /// Any other keys, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A decoded task message: everything the worker needs to run it, plus the raw envelope so
/// that a retry or restore can pass through what this type does not model.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// Task id (`headers.id`); the result key suffix.
    pub id: String,
    /// Registered task name (`headers.task`).
    pub task: String,
    /// Positional arguments, with kombu type tags decoded.
    pub args: Vec<Value>,
    /// Keyword arguments, with kombu type tags decoded.
    pub kwargs: Map<String, Value>,
    /// Callbacks, errbacks, chain and chord (signature args/kwargs tag-decoded).
    pub embed: Embed,
    /// Earliest execution time; hold the message until then.
    pub eta: Option<Timestamp>,
    /// After this instant the task must not run (REVOKED `expired`).
    pub expires: Option<Timestamp>,
    /// How many times the task was retried already.
    pub retries: u32,
    /// First task of the workflow; defaults to `id` when the header is absent.
    pub root_id: String,
    /// Task that sent this one, if any.
    pub parent_id: Option<String>,
    /// Group id for group and chord members.
    pub group: Option<String>,
    /// Position in the group.
    pub group_index: Option<u64>,
    /// `(hard, soft)` time limits in seconds.
    pub timelimit: (Option<f64>, Option<f64>),
    /// Header `ignore_result` is `true`; `null` or absent reads as `false`.
    pub ignore_result: bool,
    /// Message priority, clamped to 0..=9 (`properties.priority`).
    pub priority: u8,
    /// kombu delivery tag: the field key in `unacked`; it survives restores.
    pub delivery_tag: String,
    /// `properties.delivery_info.exchange` (`""` for Celery's direct sends).
    pub exchange: String,
    /// `properties.delivery_info.routing_key`: the queue name for exchange `""`. Empty when
    /// the producer omitted delivery_info.
    pub routing_key: String,
    /// The message was restored after an unacked delivery (it may have run already).
    pub redelivered: bool,
    /// `headers.origin` (or `properties.origin`): who produced the message.
    pub origin: Option<String>,
    /// All headers as received, for pass-through on retry and restore.
    pub headers: Map<String, Value>,
    /// The whole envelope as parsed (body still encoded).
    pub envelope: Value,
}

/// Why a message could not be decoded. It lets the worker pick a dead-letter category and
/// report the failure by kind without parsing the reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DecodeErrorKind {
    /// The list element is not JSON at all.
    NotJson,
    /// JSON, but not a kombu envelope object (no body / properties object).
    NotAnEnvelope,
    /// Pickle, msgpack, YAML or anything other than `application/json`.
    UnsupportedContentType,
    /// `properties.body_encoding` is not `base64`.
    UnsupportedEncoding,
    /// `headers.compression` names a codec other than gzip/zlib.
    UnsupportedCompression,
    /// The body is not valid base64.
    BadBase64,
    /// The decoded body or a header value is malformed (shape, JSON, dates, size).
    BadBody,
    /// A Celery protocol 1 message (task/id in the body, no `headers.task`).
    ProtocolV1,
    /// A required field (`headers.task`, `headers.id`, `properties.delivery_tag`) is missing.
    MissingField,
}

/// Why a raw message cannot be run. It carries the task id and name whenever the headers were
/// readable, so the worker can still store FAILURE for the task when decoding fails later.
/// It serializes as `{"kind", "reason", "task_id", "task_name"}` for the dead-letter record.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// Category, for the dead-letter record and metrics.
    pub kind: DecodeErrorKind,
    /// Lowercase human reason naming the bad value and what to do about it.
    pub reason: String,
    /// `headers.id` (or the v1 body's `id`) when it could be read.
    pub task_id: Option<String>,
    /// `headers.task` (or the v1 body's `task`) when it could be read.
    pub task_name: Option<String>,
}

/// A task the worker is about to publish (`taskbox send`, retries, chain steps, callbacks,
/// follow-up tasks). [`encode`] turns it into a Celery 5.7-shaped envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Task id; also the correlation id and the result key suffix.
    pub id: String,
    /// Registered task name.
    pub task: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Callbacks, errbacks, remaining chain and chord.
    pub embed: Embed,
    /// Target queue (the routing key on the anonymous exchange).
    pub queue: String,
    /// 0..=9; selects the priority list. Larger values are clamped to 9.
    pub priority: u8,
    /// Earliest execution time.
    pub eta: Option<Timestamp>,
    /// Expiry time; also written as `properties.expiration` in milliseconds.
    pub expires: Option<Timestamp>,
    /// Retry count carried in the headers.
    pub retries: u32,
    /// Workflow root; `None` means this task is its own root.
    pub root_id: Option<String>,
    /// Task that sent this one.
    pub parent_id: Option<String>,
    /// Group id for group members.
    pub group: Option<String>,
    /// Position in the group.
    pub group_index: Option<u64>,
    /// `(hard, soft)` time limits in seconds.
    pub timelimit: (Option<f64>, Option<f64>),
    /// `Some(b)` writes `b`; `None` writes `null` like Celery's `send_task` by name.
    pub ignore_result: Option<bool>,
    /// `headers.origin`, e.g. `"taskbox@<hostname>"`.
    pub origin: String,
    /// More headers. They fill `lang`, `shadow`, `replaced_task_nesting`, `stamped_headers`
    /// and `stamps` when given, and are appended otherwise. They never override a header that
    /// is computed from the fields above, and `compression` is dropped (bodies are not
    /// compressed).
    pub extra_headers: Map<String, Value>,
}

impl NewTask {
    /// A task with a fresh uuid4 id, no arguments, priority 0 and Celery's default headers.
    /// The caller sets `origin` and whatever else differs from those defaults.
    pub fn new(task: impl Into<String>, queue: impl Into<String>) -> Self {
        NewTask {
            id: new_id(),
            task: task.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            embed: Embed::default(),
            queue: queue.into(),
            priority: 0,
            eta: None,
            expires: None,
            retries: 0,
            root_id: None,
            parent_id: None,
            group: None,
            group_index: None,
            timelimit: (None, None),
            ignore_result: None,
            origin: String::new(),
            extra_headers: Map::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes one Redis list element into a runnable message. It never panics. The error says
/// what was wrong, quoting the offending value, and carries the task id and name when the
/// headers were readable.
pub fn decode(raw: &[u8]) -> Result<TaskMessage, DecodeError> {
    decode_with_limit(raw, MAX_DECOMPRESSED_BODY)
}

/// Error context: the task identity read so far.
#[derive(Default)]
struct Ctx {
    task_id: Option<String>,
    task_name: Option<String>,
}

impl Ctx {
    fn err(&self, kind: DecodeErrorKind, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            kind,
            reason: reason.into(),
            task_id: self.task_id.clone(),
            task_name: self.task_name.clone(),
        }
    }
}

fn decode_with_limit(raw: &[u8], max_body: usize) -> Result<TaskMessage, DecodeError> {
    use DecodeErrorKind as K;
    let mut ctx = Ctx::default();

    let envelope: Value = serde_json::from_slice(raw).map_err(|e| {
        ctx.err(
            K::NotJson,
            format!(
                "message is not JSON ({e}): {}; only kombu JSON envelopes can be consumed, so \
                 check what else pushes to this list",
                preview_bytes(raw)
            ),
        )
    })?;
    let Value::Object(env) = &envelope else {
        return Err(ctx.err(
            K::NotAnEnvelope,
            format!(
                "message is a JSON {} ({}), not a kombu envelope object with body, headers and \
                 properties; publish through Celery/kombu",
                kind_of(&envelope),
                preview_json(&envelope)
            ),
        ));
    };

    let empty = Map::new();
    let headers = match env.get("headers") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(h)) => h,
        Some(other) => {
            return Err(ctx.err(
                K::NotAnEnvelope,
                format!(
                    "envelope headers is a JSON {} ({}), not an object; publish through \
                     Celery/kombu",
                    kind_of(other),
                    preview_json(other)
                ),
            ));
        }
    };
    ctx.task_id = non_empty_str(headers.get("id")).map(str::to_owned);
    ctx.task_name = non_empty_str(headers.get("task")).map(str::to_owned);

    let properties = match env.get("properties") {
        Some(Value::Object(p)) => p,
        None => {
            return Err(ctx.err(
                K::NotAnEnvelope,
                "envelope has no properties object (kombu always writes one); publish through \
                 Celery/kombu",
            ));
        }
        Some(other) => {
            return Err(ctx.err(
                K::NotAnEnvelope,
                format!(
                    "envelope properties is a JSON {} ({}), not an object; publish through \
                     Celery/kombu",
                    kind_of(other),
                    preview_json(other)
                ),
            ));
        }
    };
    let body_text = match env.get("body") {
        Some(Value::String(s)) => s.as_str(),
        None => {
            return Err(ctx.err(
                K::NotAnEnvelope,
                "envelope has no body; publish through Celery/kombu",
            ));
        }
        Some(other) => {
            return Err(ctx.err(
                K::NotAnEnvelope,
                format!(
                    "envelope body is a JSON {} ({}), not an encoded string; publish through \
                     Celery/kombu",
                    kind_of(other),
                    preview_json(other)
                ),
            ));
        }
    };

    check_content_type(env.get("content-type"), &ctx)?;

    let encoded: Vec<u8> = match properties.get("body_encoding") {
        Some(Value::String(enc)) if enc == "base64" => decode_base64(body_text, &ctx)?,
        // kombu passes the body through untouched when no body_encoding is set.
        None | Some(Value::Null) => body_text.as_bytes().to_vec(),
        Some(other) => {
            return Err(ctx.err(
                K::UnsupportedEncoding,
                format!(
                    "body_encoding {} is not supported: kombu's Redis transport writes \
                     \"base64\"; leave the transport's body_encoding option at its default",
                    preview_json(other)
                ),
            ));
        }
    };

    let body_bytes = match headers.get("compression") {
        None | Some(Value::Null) => encoded,
        Some(Value::String(c))
            if matches!(
                c.as_str(),
                "application/x-gzip" | "application/x-zlib" | "gzip" | "zlib"
            ) =>
        {
            inflate(&encoded, c, max_body, &ctx)?
        }
        Some(other) => {
            return Err(ctx.err(
                K::UnsupportedCompression,
                format!(
                    "compression {} is not supported: use task_compression='gzip' or 'zlib' \
                     on the producer, or none",
                    preview_json(other)
                ),
            ));
        }
    };

    let body: Value = serde_json::from_slice(&body_bytes).map_err(|e| {
        ctx.err(
            K::BadBody,
            format!(
                "body is not valid UTF-8 JSON ({e}): {}; the producer must use \
                 task_serializer='json'",
                preview_bytes(&body_bytes)
            ),
        )
    })?;

    let Some(task) = ctx.task_name.clone() else {
        if let Value::Object(v1) = &body
            && (v1.contains_key("task") || v1.contains_key("id"))
        {
            return Err(DecodeError {
                kind: K::ProtocolV1,
                reason: "Celery message protocol 1 is not supported; set task_protocol=2 on \
                         the producer"
                    .to_owned(),
                task_id: non_empty_str(v1.get("id")).map(str::to_owned),
                task_name: non_empty_str(v1.get("task")).map(str::to_owned),
            });
        }
        return Err(ctx.err(
            K::MissingField,
            format!(
                "headers.task is {}; a protocol 2 message must name its task in headers.task",
                describe_missing(headers.get("task"))
            ),
        ));
    };
    let Some(id) = ctx.task_id.clone() else {
        return Err(ctx.err(
            K::MissingField,
            format!(
                "headers.id is {}; a protocol 2 message must carry its task id in headers.id",
                describe_missing(headers.get("id"))
            ),
        ));
    };

    let (args, kwargs, embed) = split_body(body, &ctx)?;

    let eta = time_header(headers, "eta", &ctx)?;
    let expires = time_header(headers, "expires", &ctx)?;
    let retries = match headers.get("retries") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                ctx.err(
                    K::BadBody,
                    format!(
                        "headers.retries is {}, expected a non-negative integer below 2^32",
                        preview_json(v)
                    ),
                )
            })?,
    };
    let timelimit = timelimit_header(headers.get("timelimit"), &ctx)?;

    let delivery_tag = match properties.get("delivery_tag") {
        Some(Value::String(tag)) if !tag.is_empty() => tag.clone(),
        other => {
            return Err(ctx.err(
                K::MissingField,
                format!(
                    "properties.delivery_tag is {}; kombu producers always set it, so publish \
                     through Celery/kombu",
                    describe_missing(other)
                ),
            ));
        }
    };
    let delivery_info = match properties.get("delivery_info") {
        Some(Value::Object(d)) => d,
        _ => &empty,
    };

    let mut message = TaskMessage {
        root_id: non_empty_str(headers.get("root_id"))
            .map(str::to_owned)
            .unwrap_or_else(|| id.clone()),
        id,
        task,
        args,
        kwargs,
        embed,
        eta,
        expires,
        retries,
        parent_id: non_empty_str(headers.get("parent_id")).map(str::to_owned),
        group: non_empty_str(headers.get("group")).map(str::to_owned),
        group_index: headers.get("group_index").and_then(Value::as_u64),
        timelimit,
        ignore_result: headers.get("ignore_result") == Some(&Value::Bool(true)),
        priority: priority_of(properties.get("priority")),
        delivery_tag,
        exchange: str_or_empty(delivery_info.get("exchange")),
        routing_key: str_or_empty(delivery_info.get("routing_key")),
        redelivered: headers.get("redelivered") == Some(&Value::Bool(true))
            || delivery_info.get("redelivered") == Some(&Value::Bool(true)),
        origin: non_empty_str(headers.get("origin"))
            .or_else(|| non_empty_str(properties.get("origin")))
            .map(str::to_owned),
        headers: headers.clone(),
        envelope: Value::Null,
    };
    // Moved in last: everything above borrowed from it. A clone would copy the whole body.
    message.envelope = envelope;
    Ok(message)
}

fn check_content_type(value: Option<&Value>, ctx: &Ctx) -> Result<(), DecodeError> {
    let fix = "configure the producer with task_serializer='json'";
    let content_type = match value {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => {
            return Err(ctx.err(
                DecodeErrorKind::UnsupportedContentType,
                format!("envelope has no content-type, expected application/json; {fix}"),
            ));
        }
        Some(other) => {
            return Err(ctx.err(
                DecodeErrorKind::UnsupportedContentType,
                format!(
                    "content type {} is not a string, expected \"application/json\"; {fix}",
                    preview_json(other)
                ),
            ));
        }
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let serializer = match media.as_str() {
        "application/json" => return Ok(()),
        "application/x-python-serialize" => "pickle",
        "application/x-msgpack" | "application/msgpack" => "msgpack",
        "application/x-yaml" | "application/yaml" => "yaml",
        _ => {
            return Err(ctx.err(
                DecodeErrorKind::UnsupportedContentType,
                format!(
                    "content type {} is refused: only application/json is supported; {fix}",
                    preview_str(content_type)
                ),
            ));
        }
    };
    Err(ctx.err(
        DecodeErrorKind::UnsupportedContentType,
        format!(
            "content type {} ({serializer}) is refused: {fix}",
            truncate_chars(content_type, PREVIEW_CHARS)
        ),
    ))
}

/// Standard alphabet, padding optional (Python's decoder is the reference, and some
/// non-Python producers strip it).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn decode_base64(text: &str, ctx: &Ctx) -> Result<Vec<u8>, DecodeError> {
    // `base64.encodebytes`-style producers wrap lines; Python's decoder skips the newlines.
    let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    BASE64.decode(&compact).map_err(|e| {
        ctx.err(
            DecodeErrorKind::BadBase64,
            format!(
                "body is not valid base64 ({e}): {}; properties.body_encoding says \"base64\", \
                 so the producer must base64-encode the serialized body",
                preview_str(text)
            ),
        )
    })
}

/// Decompresses a kombu-compressed body. kombu's `application/x-gzip` is really zlib's format
/// (`zlib.compress`), so the format is sniffed: a gzip magic number selects gzip, anything
/// else is read as zlib.
fn inflate(data: &[u8], codec: &str, max: usize, ctx: &Ctx) -> Result<Vec<u8>, DecodeError> {
    let reader: Box<dyn Read + '_> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(data))
    } else {
        Box::new(flate2::read::ZlibDecoder::new(data))
    };
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    reader.take(cap).read_to_end(&mut out).map_err(|e| {
        ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "body does not decompress as {} ({e}); the compression header must match \
                 how the body was compressed",
                preview_str(codec)
            ),
        )
    })?;
    if out.len() > max {
        return Err(ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "body decompresses to more than {max} bytes ({} compressed, codec {}); send \
                 large payloads by reference instead of in the task arguments",
                data.len(),
                preview_str(codec)
            ),
        ));
    }
    Ok(out)
}

/// The protocol 2 body `[args, kwargs, embed]`, decoded.
type BodyParts = (Vec<Value>, Map<String, Value>, Embed);

/// Splits the protocol 2 body `[args, kwargs, embed]`, decoding kombu type tags.
fn split_body(body: Value, ctx: &Ctx) -> Result<BodyParts, DecodeError> {
    let shape = "expected a JSON array [args, kwargs, embed] (Celery protocol 2)";
    let parts = match body {
        Value::Array(parts) => parts,
        other => {
            return Err(ctx.err(
                DecodeErrorKind::BadBody,
                format!(
                    "body is a JSON {} ({}), {shape}",
                    kind_of(&other),
                    preview_json(&other)
                ),
            ));
        }
    };
    let [args, kwargs, embed]: [Value; 3] = parts.try_into().map_err(|parts: Vec<Value>| {
        ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "body array has {} elements ({}), {shape}",
                parts.len(),
                preview_json(&Value::Array(parts.clone()))
            ),
        )
    })?;
    let Value::Array(mut args) = args else {
        return Err(ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "body args is a JSON {} ({}), expected an array of positional arguments",
                kind_of(&args),
                preview_json(&args)
            ),
        ));
    };
    let Value::Object(mut kwargs) = kwargs else {
        return Err(ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "body kwargs is a JSON {} ({}), expected an object of keyword arguments",
                kind_of(&kwargs),
                preview_json(&kwargs)
            ),
        ));
    };
    let mut embed = match embed {
        Value::Null => Embed::default(),
        embed @ Value::Object(_) => Embed::deserialize(&embed).map_err(|e| {
            ctx.err(
                DecodeErrorKind::BadBody,
                format!(
                    "body embed is malformed ({e}): {}; callbacks, errbacks and chain must be \
                     null or lists of signature objects with a task name",
                    preview_json(&embed)
                ),
            )
        })?,
        other => {
            return Err(ctx.err(
                DecodeErrorKind::BadBody,
                format!(
                    "body embed is a JSON {} ({}), expected an object or null",
                    kind_of(&other),
                    preview_json(&other)
                ),
            ));
        }
    };
    for list in [&mut embed.callbacks, &mut embed.errbacks, &mut embed.chain]
        .into_iter()
        .flatten()
    {
        for sig in list.iter_mut() {
            decode_tags_in_place_vec(&mut sig.args);
            decode_tags_in_place_map(&mut sig.kwargs);
        }
    }
    decode_tags_in_place_vec(&mut args);
    decode_tags_in_place_map(&mut kwargs);
    Ok((args, kwargs, embed))
}

fn time_header(
    headers: &Map<String, Value>,
    name: &str,
    ctx: &Ctx,
) -> Result<Option<Timestamp>, DecodeError> {
    match headers.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_timestamp(s).map(Some).ok_or_else(|| {
            ctx.err(
                DecodeErrorKind::BadBody,
                format!(
                    "headers.{name} {} is not an ISO-8601 timestamp; send it like \
                     \"2026-11-24T09:28:05.227235+00:00\" or null",
                    preview_str(s)
                ),
            )
        }),
        Some(other) => Err(ctx.err(
            DecodeErrorKind::BadBody,
            format!(
                "headers.{name} is {}, expected an ISO-8601 timestamp string or null",
                preview_json(other)
            ),
        )),
    }
}

fn timelimit_header(
    value: Option<&Value>,
    ctx: &Ctx,
) -> Result<(Option<f64>, Option<f64>), DecodeError> {
    let limit = |v: &Value| match v {
        Value::Null => Some(None),
        Value::Number(n) => n.as_f64().map(Some),
        _ => None,
    };
    match value {
        None | Some(Value::Null) => Ok((None, None)),
        Some(Value::Array(pair)) if pair.len() == 2 => match (limit(&pair[0]), limit(&pair[1])) {
            (Some(hard), Some(soft)) => Ok((hard, soft)),
            _ => Err(bad_timelimit(value, ctx)),
        },
        Some(_) => Err(bad_timelimit(value, ctx)),
    }
}

fn bad_timelimit(value: Option<&Value>, ctx: &Ctx) -> DecodeError {
    let shown = value.map(preview_json).unwrap_or_default();
    ctx.err(
        DecodeErrorKind::BadBody,
        format!(
            "headers.timelimit is {shown}, expected [hard, soft] seconds, each a number or null"
        ),
    )
}

/// kombu's `int(properties['priority'])`, clamped to 0..=9; absent or unreadable means 0.
fn priority_of(value: Option<&Value>) -> u8 {
    let raw = match value {
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    // Clamped to 0..=9 first, so the conversion cannot fail.
    u8::try_from(raw.unwrap_or(0).clamp(0, 9)).unwrap_or(0)
}

/// Parses a Celery ISO-8601 time: with an offset (`+00:00`, `Z`, ...) as given, or naive as
/// UTC (Celery's default `timezone`).
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    TimeZone::UTC.to_timestamp(civil).ok()
}

/// Formats a timestamp as Celery writes it (`2026-11-24T09:28:05.227235+00:00`): UTC, a
/// `+00:00` offset and microseconds. Used for eta/expires headers and result `date_done`.
pub fn format_timestamp(ts: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1000
    )
}

// ---------------------------------------------------------------------------------------------
// kombu JSON type tags
// ---------------------------------------------------------------------------------------------

/// Decodes kombu's JSON type tags (`{"__type__": T, "__value__": V}`) recursively, so that
/// tasks see plain JSON. Datetimes, dates and times become their ISO string, decimals their
/// string, uuids their hex string, bytes their UTF-8 string, and base64 stays the base64
/// string. Unknown or malformed tags are left as they are.
pub fn decode_kombu_tags(mut value: Value) -> Value {
    decode_tags_in_place(&mut value);
    value
}

fn decode_tags_in_place(value: &mut Value) {
    match value {
        Value::Array(items) => decode_tags_in_place_vec(items),
        Value::Object(map) => {
            if let Some(plain) = untag(map) {
                *value = plain;
            } else {
                decode_tags_in_place_map(map);
            }
        }
        _ => {}
    }
}

fn decode_tags_in_place_vec(items: &mut [Value]) {
    items.iter_mut().for_each(decode_tags_in_place);
}

fn decode_tags_in_place_map(map: &mut Map<String, Value>) {
    map.values_mut().for_each(decode_tags_in_place);
}

fn untag(map: &Map<String, Value>) -> Option<Value> {
    if map.len() != 2 {
        return None;
    }
    let kind = map.get("__type__")?.as_str()?;
    let value = map.get("__value__")?;
    let text = match (kind, value) {
        ("datetime" | "date" | "time" | "decimal" | "bytes" | "base64", Value::String(s)) => {
            s.clone()
        }
        ("uuid", Value::Object(u)) => u.get("hex")?.as_str()?.to_owned(),
        ("uuid", Value::String(s)) => s.clone(),
        _ => return None,
    };
    Some(Value::String(text))
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Headers computed from [`NewTask`] fields; `extra_headers` never overrides them.
const DERIVED_HEADERS: [&str; 14] = [
    "task",
    "id",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
];

/// Key order of Celery 5.7's envelope, headers, properties and delivery_info (captured).
const ENVELOPE_ORDER: &[&str] = &[
    "body",
    "content-encoding",
    "content-type",
    "headers",
    "properties",
];
const HEADER_ORDER: &[&str] = &[
    "lang",
    "task",
    "id",
    "shadow",
    "eta",
    "expires",
    "group",
    "group_index",
    "retries",
    "timelimit",
    "root_id",
    "parent_id",
    "argsrepr",
    "kwargsrepr",
    "origin",
    "ignore_result",
    "replaced_task_nesting",
    "stamped_headers",
    "stamps",
];
const PROPERTY_ORDER: &[&str] = &[
    "correlation_id",
    "reply_to",
    "origin",
    "delivery_mode",
    "expiration",
    "delivery_info",
    "priority",
    "body_encoding",
    "delivery_tag",
];
const DELIVERY_INFO_ORDER: &[&str] = &["exchange", "routing_key", "redelivered"];

/// Returns (list key to LPUSH to, envelope JSON string) for a task, shaped like Celery 5.7's
/// `apply_async` output: base64 body, the full protocol 2 header set and fresh delivery tag.
pub fn encode(task: &NewTask) -> (String, String) {
    encode_at(task, Timestamp::now())
}

/// [`encode`] with an explicit "now", which only affects `properties.expiration` (the
/// milliseconds from now until `expires`, 0 if already past, as Celery computes it).
pub fn encode_at(task: &NewTask, now: Timestamp) -> (String, String) {
    let priority = task.priority.min(9);
    let body = to_python_json(&(&task.args, &task.kwargs, &task.embed));
    let time = |t: Option<Timestamp>| t.map_or(Value::Null, |t| Value::String(format_timestamp(t)));
    let opt = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
    let extra = |key: &str, default: Value| task.extra_headers.get(key).cloned().unwrap_or(default);

    let mut headers = Map::new();
    headers.insert("lang".into(), extra("lang", Value::from("py")));
    headers.insert("task".into(), Value::from(task.task.clone()));
    headers.insert("id".into(), Value::from(task.id.clone()));
    headers.insert("shadow".into(), extra("shadow", Value::Null));
    headers.insert("eta".into(), time(task.eta));
    headers.insert("expires".into(), time(task.expires));
    headers.insert("group".into(), opt(&task.group));
    headers.insert(
        "group_index".into(),
        task.group_index.map_or(Value::Null, Value::from),
    );
    headers.insert("retries".into(), Value::from(task.retries));
    headers.insert(
        "timelimit".into(),
        Value::Array(vec![
            task.timelimit.0.map_or(Value::Null, Value::from),
            task.timelimit.1.map_or(Value::Null, Value::from),
        ]),
    );
    headers.insert(
        "root_id".into(),
        Value::from(task.root_id.clone().unwrap_or_else(|| task.id.clone())),
    );
    headers.insert("parent_id".into(), opt(&task.parent_id));
    headers.insert("argsrepr".into(), Value::from(args_repr(&task.args)));
    headers.insert("kwargsrepr".into(), Value::from(kwargs_repr(&task.kwargs)));
    headers.insert("origin".into(), Value::from(task.origin.clone()));
    headers.insert(
        "ignore_result".into(),
        task.ignore_result.map_or(Value::Null, Value::Bool),
    );
    headers.insert(
        "replaced_task_nesting".into(),
        extra("replaced_task_nesting", Value::from(0)),
    );
    headers.insert(
        "stamped_headers".into(),
        extra("stamped_headers", Value::Null),
    );
    headers.insert("stamps".into(), extra("stamps", Value::Object(Map::new())));
    for (key, value) in &task.extra_headers {
        if !headers.contains_key(key)
            && !DERIVED_HEADERS.contains(&key.as_str())
            && key != "compression"
        {
            headers.insert(key.clone(), value.clone());
        }
    }

    let mut delivery_info = Map::new();
    delivery_info.insert("exchange".into(), Value::from(""));
    delivery_info.insert("routing_key".into(), Value::from(task.queue.clone()));

    let mut properties = Map::new();
    properties.insert("correlation_id".into(), Value::from(task.id.clone()));
    properties.insert("reply_to".into(), Value::from(new_id()));
    if task.retries > 0 && !task.origin.is_empty() {
        // Task.retry re-publishes with the request's origin among the publish options,
        // which kombu copies into the properties (captured on both retries).
        properties.insert("origin".into(), Value::from(task.origin.clone()));
    }
    properties.insert("delivery_mode".into(), Value::from(2));
    if let Some(expires) = task.expires {
        let ms = expires.duration_since(now).as_millis().max(0);
        properties.insert("expiration".into(), Value::from(ms.to_string()));
    }
    properties.insert("delivery_info".into(), Value::Object(delivery_info));
    properties.insert("priority".into(), Value::from(priority));
    properties.insert("body_encoding".into(), Value::from("base64"));
    properties.insert("delivery_tag".into(), Value::from(new_id()));

    let mut envelope = Map::new();
    envelope.insert("body".into(), Value::from(BASE64_OUT.encode(body)));
    envelope.insert("content-encoding".into(), Value::from("utf-8"));
    envelope.insert("content-type".into(), Value::from("application/json"));
    envelope.insert("headers".into(), Value::Object(headers));
    envelope.insert("properties".into(), Value::Object(properties));

    (
        queue_key(&task.queue, priority),
        to_python_json(&Ordered(&Value::Object(envelope), Level::Envelope)),
    )
}

/// Python's `base64.b64encode`: standard alphabet with padding.
const BASE64_OUT: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The retry of `msg` as Celery's `Task.retry` publishes it: same id, args, kwargs and embed,
/// `retries + 1`, the given eta, `parent_id = msg.id`, root_id kept, same queue (routing key)
/// and priority, and custom headers passed through. Like Celery, it keeps the request's
/// origin; `origin` is used only when the message had none.
pub fn retry_of(msg: &TaskMessage, eta: Timestamp, origin: &str) -> NewTask {
    let extra_headers = msg
        .headers
        .iter()
        .filter(|(key, _)| {
            !DERIVED_HEADERS.contains(&key.as_str())
                && !matches!(key.as_str(), "redelivered" | "compression")
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    NewTask {
        id: msg.id.clone(),
        task: msg.task.clone(),
        args: msg.args.clone(),
        kwargs: msg.kwargs.clone(),
        embed: msg.embed.clone(),
        queue: msg.routing_key.clone(),
        priority: msg.priority,
        eta: Some(eta),
        expires: msg.expires,
        retries: msg.retries.saturating_add(1),
        root_id: Some(msg.root_id.clone()),
        parent_id: Some(msg.id.clone()),
        group: msg.group.clone(),
        group_index: msg.group_index,
        timelimit: msg.timelimit,
        ignore_result: msg.headers.get("ignore_result").and_then(Value::as_bool),
        origin: msg.origin.clone().unwrap_or_else(|| origin.to_owned()),
        extra_headers,
    }
}

/// The next chain step after `msg` succeeded with `result`, as `celery/app/trace.py` builds it
/// (spec §6). It pops `chain[-1]` and prepends the result to its args unless immutable. The
/// remaining chain is `chain[..len-1]`, an empty list rather than null at the end.
/// `parent_id = msg.id`, `root_id = msg.root_id`, the task id comes from `options.task_id`,
/// the priority from `msg`, and the queue from `options.queue` or `default_queue(task)`.
/// `None` when there is no chain or it is empty.
pub fn next_chain_step(
    msg: &TaskMessage,
    result: &Value,
    default_queue: &dyn Fn(&str) -> String,
    origin: &str,
) -> Option<NewTask> {
    let (next, rest) = msg.embed.chain.as_deref()?.split_last()?;
    let spawn = Spawn {
        msg,
        default_queue,
        origin,
        now: Timestamp::now(),
    };
    let mut task = spawn.task_from(next, Some(result));
    task.embed.chain = Some(rest.to_vec());
    Some(task)
}

/// Callbacks (`link`) to publish on success, in Celery's order: each with `result` prepended
/// unless immutable, `parent_id = msg.id`, `root_id = msg.root_id` and the priority of `msg`.
/// As in Celery, several plain callbacks are sent as one group (shared fresh group id and
/// `group_index`). Nested group signatures are applied on their own first, and chain
/// signatures start at their first task.
pub fn callbacks(
    msg: &TaskMessage,
    result: &Value,
    default_queue: &dyn Fn(&str) -> String,
    origin: &str,
) -> Vec<NewTask> {
    let Some(sigs) = msg.embed.callbacks.as_deref() else {
        return Vec::new();
    };
    let spawn = Spawn {
        msg,
        default_queue,
        origin,
        now: Timestamp::now(),
    };
    if let [only] = sigs {
        return spawn.apply(only, Some(result));
    }
    let is_group = |sig: &&Signature| sig.subtask_type.as_deref() == Some("group");
    let mut out: Vec<NewTask> = sigs
        .iter()
        .filter(is_group)
        .flat_map(|sig| spawn.apply(sig, Some(result)))
        .collect();
    let group_id = new_id();
    for (index, sig) in sigs.iter().filter(|sig| !is_group(sig)).enumerate() {
        let mut tasks = spawn.apply(sig, Some(result));
        if sig.subtask_type.is_none() {
            for task in &mut tasks {
                task.group = Some(group_id.clone());
                task.group_index = u64::try_from(index).ok();
            }
        }
        out.extend(tasks);
    }
    out
}

/// The same message restored to its queue, as kombu's restore writes it: `headers.redelivered`
/// and `properties.delivery_info.redelivered` set to true, everything else unchanged (same
/// delivery tag, same body). Returns (list key to RPUSH to, envelope string).
pub fn redelivered(msg: &TaskMessage) -> (String, String) {
    let mut envelope = msg.envelope.clone();
    if let Value::Object(env) = &mut envelope {
        if let Some(Value::Object(headers)) = env.get_mut("headers") {
            headers.insert("redelivered".into(), Value::Bool(true));
        }
        if let Some(Value::Object(properties)) = env.get_mut("properties")
            && let Some(Value::Object(info)) = properties.get_mut("delivery_info")
        {
            info.insert("redelivered".into(), Value::Bool(true));
        }
    }
    (
        queue_key(&msg.routing_key, msg.priority),
        to_python_json(&Ordered(&envelope, Level::Envelope)),
    )
}

/// What a task published from inside `msg` inherits.
struct Spawn<'a> {
    msg: &'a TaskMessage,
    default_queue: &'a dyn Fn(&str) -> String,
    origin: &'a str,
    now: Timestamp,
}

impl Spawn<'_> {
    /// Applies a signature that may be a nested chain or group; plain ones give one task.
    fn apply(&self, sig: &Signature, result: Option<&Value>) -> Vec<NewTask> {
        let result = if sig.immutable { None } else { result };
        let members = || -> Vec<Signature> {
            match sig.kwargs.get("tasks") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|item| Signature::deserialize(item).ok())
                    .collect(),
                _ => Vec::new(),
            }
        };
        match sig.subtask_type.as_deref() {
            Some("chain") => {
                let steps = members();
                let Some((first, rest)) = steps.split_first() else {
                    return Vec::new();
                };
                let mut task = self.task_from(first, result);
                if !rest.is_empty() {
                    task.embed.chain = Some(rest.iter().rev().cloned().collect());
                }
                vec![task]
            }
            Some("group") => {
                let group_id = non_empty_str(sig.options.get("task_id"))
                    .map(str::to_owned)
                    .unwrap_or_else(new_id);
                members()
                    .iter()
                    .enumerate()
                    .map(|(index, member)| {
                        let mut task = self.task_from(member, result);
                        task.group = Some(group_id.clone());
                        task.group_index = u64::try_from(index).ok();
                        task
                    })
                    .collect()
            }
            _ => vec![self.task_from(sig, result)],
        }
    }

    /// One task from a plain signature, with `result` prepended unless immutable.
    fn task_from(&self, sig: &Signature, result: Option<&Value>) -> NewTask {
        let options = &sig.options;
        let option = |key: &str| options.get(key).cloned().map(decode_kombu_tags);
        let queue = non_empty_str(options.get("queue"))
            .map(str::to_owned)
            .unwrap_or_else(|| (self.default_queue)(&sig.task));
        let mut task = NewTask::new(sig.task.clone(), queue);
        if let Some(id) = non_empty_str(options.get("task_id")) {
            task.id = id.to_owned();
        }
        task.args = match result {
            Some(result) if !sig.immutable => std::iter::once(result.clone())
                .chain(sig.args.iter().cloned())
                .collect(),
            _ => sig.args.clone(),
        };
        task.kwargs = sig.kwargs.clone();
        task.embed = Embed {
            callbacks: signatures_in(options.get("link")),
            errbacks: signatures_in(options.get("link_error")),
            chain: None,
            chord: options.get("chord").filter(|v| !v.is_null()).cloned(),
            extra: Map::new(),
        };
        task.priority = self.msg.priority;
        task.eta = match option("eta") {
            Some(Value::String(s)) => parse_timestamp(&s),
            _ => option("countdown")
                .and_then(|v| v.as_f64())
                .and_then(|secs| after(self.now, secs)),
        };
        task.expires = match option("expires") {
            Some(Value::String(s)) => parse_timestamp(&s),
            Some(Value::Number(n)) => n.as_f64().and_then(|secs| after(self.now, secs)),
            _ => None,
        };
        task.root_id = Some(self.msg.root_id.clone());
        task.parent_id = Some(self.msg.id.clone());
        task.group = non_empty_str(options.get("group_id")).map(str::to_owned);
        task.group_index = options.get("group_index").and_then(Value::as_u64);
        task.timelimit = (
            options.get("time_limit").and_then(Value::as_f64),
            options.get("soft_time_limit").and_then(Value::as_f64),
        );
        task.ignore_result = Some(
            options
                .get("ignore_result")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        );
        task.origin = self.origin.to_owned();
        if let Some(Value::Object(custom)) = options.get("headers") {
            task.extra_headers = custom.clone();
        }
        if let Some(shadow) = non_empty_str(options.get("shadow")) {
            task.extra_headers
                .insert("shadow".into(), Value::from(shadow.to_owned()));
        }
        task
    }
}

fn signatures_in(value: Option<&Value>) -> Option<Vec<Signature>> {
    match value {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|item| Signature::deserialize(item).ok())
                .collect(),
        ),
        Some(item @ Value::Object(_)) => Signature::deserialize(item).ok().map(|sig| vec![sig]),
        _ => None,
    }
}

fn after(now: Timestamp, secs: f64) -> Option<Timestamp> {
    let delta = SignedDuration::try_from_secs_f64(secs).ok()?;
    now.checked_add(delta).ok()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// Python-compatible rendering
// ---------------------------------------------------------------------------------------------

/// Serialises like Python's `json.dumps` with its defaults, which is what kombu and Celery
/// write: `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`, and floats in Python's
/// `repr` form. With it, taskbox's envelopes and result payloads match Celery's byte for byte
/// wherever key order allows.
pub fn python_json(value: &Value) -> String {
    to_python_json(value)
}

/// [`python_json`] for this module's own serde types (the body tuple, [`Ordered`]).
fn to_python_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Invariant: serialization into a Vec cannot fail. Vec writes are infallible. The only
    // callers pass serde_json values and this module's derived types: all map keys are
    // strings, every number is finite, and there is no fallible custom Serialize. The
    // formatter escapes everything outside ASCII, so the bytes are ASCII and so valid UTF-8.
    value
        .serialize(&mut serializer)
        .expect("serializing JSON data into a Vec cannot fail");
    String::from_utf8(out).expect("python_json output is ASCII")
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_f64<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f64,
    ) -> std::io::Result<()> {
        writer.write_all(python_float(value).as_bytes())
    }

    fn write_f32<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        value: f32,
    ) -> std::io::Result<()> {
        writer.write_all(python_float(f64::from(value)).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // serde_json has already escaped quotes, backslashes and control characters; what
        // is left to do is Python's ensure_ascii for everything outside ' '..='~'.
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                let mut buf = [0u8; 4];
                writer.write_all(c.encode_utf8(&mut buf).as_bytes())?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific below 1e-4 and from 1e16.
fn python_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let (int, frac) = if exponent >= 0 {
            let point = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= point {
                (format!("{digits:0<point$}"), "0".to_owned())
            } else {
                (digits[..point].to_owned(), digits[point..].to_owned())
            }
        } else {
            let zeros = usize::try_from(-exponent - 1).unwrap_or(0);
            ("0".to_owned(), format!("{}{digits}", "0".repeat(zeros)))
        };
        format!("{sign}{int}.{frac}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    }
}

/// Celery's `argsrepr`: the args as a Python tuple repr, truncated like `saferepr`.
fn args_repr(args: &[Value]) -> String {
    let mut out = String::from("(");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_repr(arg, &mut out);
    }
    if args.len() == 1 {
        out.push(',');
    }
    out.push(')');
    truncate_repr(out)
}

/// Celery's `kwargsrepr`: the kwargs as a Python dict repr, truncated like `saferepr`.
fn kwargs_repr(kwargs: &Map<String, Value>) -> String {
    let mut out = String::new();
    py_repr_map(kwargs, &mut out);
    truncate_repr(out)
}

fn truncate_repr(text: String) -> String {
    if text.chars().count() <= REPR_MAX_CHARS {
        text
    } else {
        let mut cut: String = text.chars().take(REPR_MAX_CHARS).collect();
        cut.push_str("...");
        cut
    }
}

fn py_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => py_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => py_repr_map(map, out),
    }
}

fn py_repr_map(map: &Map<String, Value>, out: &mut String) {
    out.push('{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_str_repr(key, out);
        out.push_str(": ");
        py_repr(value, out);
    }
    out.push('}');
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
fn py_str_repr(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if u32::from(c) < 0x20 || (0x7f..=0x9f).contains(&u32::from(c)) => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Which Celery object a JSON object is, to write its known keys in Celery's order.
#[derive(Clone, Copy)]
enum Level {
    Envelope,
    Headers,
    Properties,
    DeliveryInfo,
    Plain,
}

impl Level {
    fn order(self) -> &'static [&'static str] {
        match self {
            Level::Envelope => ENVELOPE_ORDER,
            Level::Headers => HEADER_ORDER,
            Level::Properties => PROPERTY_ORDER,
            Level::DeliveryInfo => DELIVERY_INFO_ORDER,
            Level::Plain => &[],
        }
    }

    fn child(self, key: &str) -> Level {
        match (self, key) {
            (Level::Envelope, "headers") => Level::Headers,
            (Level::Envelope, "properties") => Level::Properties,
            (Level::Properties, "delivery_info") => Level::DeliveryInfo,
            _ => Level::Plain,
        }
    }
}

/// Serialises an envelope with Celery's key order for the known keys, then the others in map
/// order. This does not depend on serde_json's `preserve_order` feature.
struct Ordered<'a>(&'a Value, Level);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Ordered(value, level) = *self;
        let Value::Object(map) = value else {
            return value.serialize(serializer);
        };
        let order = level.order();
        if order.is_empty() {
            return value.serialize(serializer);
        }
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in order {
            if let Some(child) = map.get(*key) {
                out.serialize_entry(key, &Ordered(child, level.child(key)))?;
            }
        }
        for (key, child) in map {
            if !order.contains(&key.as_str()) {
                out.serialize_entry(key, &Ordered(child, level.child(key)))?;
            }
        }
        out.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn str_or_empty(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn describe_missing(value: Option<&Value>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(v) => format!("{} instead of a non-empty string", preview_json(v)),
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        out.push_str("...");
    }
    out
}

/// A string quoted with Rust escapes (so `\x06\x16` and control bytes stay visible).
fn preview_str(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}...")
    } else {
        format!("{head:?}")
    }
}

fn preview_json(value: &Value) -> String {
    truncate_chars(&value.to_string(), PREVIEW_CHARS)
}

fn preview_bytes(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(PREVIEW_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    let mut shown: String = text.chars().take(PREVIEW_CHARS).collect();
    let cut = text.chars().count() > PREVIEW_CHARS || head.len() < bytes.len();
    shown = format!("{shown:?}");
    if cut {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    fn fixture(source: &str) -> &'static Fixture {
        FIXTURES
            .iter()
            .find(|f| f.source.starts_with(source))
            .unwrap_or_else(|| panic!("no fixture {source}"))
    }

    fn decoded(source: &str) -> TaskMessage {
        decode(fixture(source).raw.as_bytes()).unwrap()
    }

    fn ts(text: &str) -> Timestamp {
        parse_timestamp(text).unwrap()
    }

    fn celery_queue(_task: &str) -> String {
        "celery".to_owned()
    }

    /// A captured message with its envelope edited as JSON.
    fn mutate(raw: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut env: Value = serde_json::from_str(raw).unwrap();
        edit(env.as_object_mut().unwrap());
        serde_json::to_vec(&env).unwrap()
    }

    /// A captured message whose body is replaced by `body` (base64-encoded as kombu does).
    fn with_body(raw: &str, body: &str) -> Vec<u8> {
        mutate(raw, |env| {
            env.insert("body".into(), Value::from(BASE64_OUT.encode(body)));
        })
    }

    fn headers_mut(env: &mut Map<String, Value>) -> &mut Map<String, Value> {
        env.get_mut("headers").unwrap().as_object_mut().unwrap()
    }

    fn properties_mut(env: &mut Map<String, Value>) -> &mut Map<String, Value> {
        env.get_mut("properties").unwrap().as_object_mut().unwrap()
    }

    fn decode_err(raw: &[u8]) -> DecodeError {
        match decode(raw) {
            Ok(msg) => panic!("expected an error, decoded {}", msg.id),
            Err(err) => err,
        }
    }

    fn body_of(envelope: &str) -> Value {
        let env: Value = serde_json::from_str(envelope).unwrap();
        let bytes = BASE64_OUT.decode(env["body"].as_str().unwrap()).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Our envelope with the per-publish random values (reply_to, delivery_tag) and, when
    /// the decoded bodies are equal, the body string taken from `theirs`, so that the rest
    /// can be compared byte for byte.
    fn align_random_fields(ours: &str, theirs: &str) -> String {
        let o: Value = serde_json::from_str(ours).unwrap();
        let t: Value = serde_json::from_str(theirs).unwrap();
        let mut aligned = ours.to_owned();
        for key in ["reply_to", "delivery_tag"] {
            let (ov, tv) = (&o["properties"][key], &t["properties"][key]);
            aligned = aligned.replace(ov.as_str().unwrap(), tv.as_str().unwrap());
        }
        assert_eq!(body_of(ours), body_of(theirs), "decoded bodies differ");
        aligned.replace(o["body"].as_str().unwrap(), t["body"].as_str().unwrap())
    }

    // -----------------------------------------------------------------------------------------
    // Decoding captured messages
    // -----------------------------------------------------------------------------------------

    #[test]
    fn captured_messages_decode_with_expected_fields() {
        for f in FIXTURES {
            let msg = decode(f.raw.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e} ({:?})", f.source, e.kind));
            let args: Vec<Value> = serde_json::from_str(f.args).unwrap();
            let kwargs: Map<String, Value> = serde_json::from_str(f.kwargs).unwrap();
            assert_eq!(msg.id, f.id, "{}", f.source);
            assert_eq!(msg.task, f.task, "{}", f.source);
            assert_eq!(msg.args, args, "{}", f.source);
            assert_eq!(msg.kwargs, kwargs, "{}", f.source);
            assert_eq!(
                msg.eta.map(format_timestamp).as_deref(),
                f.eta,
                "{}",
                f.source
            );
            assert_eq!(
                msg.expires.map(format_timestamp).as_deref(),
                f.expires,
                "{}",
                f.source
            );
            assert_eq!(msg.priority, f.priority, "{}", f.source);
            assert_eq!(
                queue_key(&msg.routing_key, msg.priority),
                f.key,
                "{}",
                f.source
            );
            assert_eq!(msg.retries, f.retries, "{}", f.source);
            assert_eq!(msg.redelivered, f.redelivered, "{}", f.source);
            assert_eq!(msg.exchange, "", "{}", f.source);
            assert_eq!(msg.envelope, serde_json::from_str::<Value>(f.raw).unwrap());
            assert_eq!(
                Value::from(msg.delivery_tag.clone()),
                msg.envelope["properties"]["delivery_tag"],
                "{}",
                f.source
            );
        }
    }

    #[test]
    fn countdown_expires_priority7_message_decodes_every_header() {
        let msg = decoded("A_monitor_producer.txt:38");
        assert_eq!(msg.id, "194458a4-7874-4a2d-8e0d-7f564ab0b6de");
        assert_eq!(msg.task, "app.add");
        assert_eq!(msg.args, vec![json!(4), json!(5)]);
        assert!(msg.kwargs.is_empty());
        assert_eq!(msg.eta, Some(ts("2026-11-24T09:28:05.227235+00:00")));
        assert_eq!(msg.expires, Some(ts("2026-11-24T09:29:35.227235+00:00")));
        assert_eq!(msg.priority, 7);
        assert_eq!(msg.routing_key, "dataset");
        assert_eq!(
            queue_key(&msg.routing_key, msg.priority),
            "dataset\x06\x166"
        );
        assert_eq!(msg.root_id, msg.id);
        assert_eq!(msg.parent_id, None);
        assert_eq!(msg.group, None);
        assert_eq!(msg.group_index, None);
        assert_eq!(msg.timelimit, (None, None));
        assert!(!msg.ignore_result);
        assert!(!msg.redelivered);
        assert_eq!(msg.origin.as_deref(), Some("gen13858@vm"));
        assert_eq!(msg.delivery_tag, "b5d9c11a-a100-422d-829a-f920f1758ea2");
        assert_eq!(msg.embed, Embed::default());
        assert_eq!(msg.headers["argsrepr"], json!("(4, 5)"));
        assert_eq!(msg.envelope["properties"]["expiration"], json!("120000"));
    }

    #[test]
    fn chain_root_keeps_remaining_chain_in_reverse_order() {
        let msg = decoded("A_monitor_producer.txt:53");
        let chain = msg.embed.chain.as_deref().unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1].task, "app.add");
        assert_eq!(chain[1].args, vec![json!(10)]);
        assert_eq!(
            chain[1].options["task_id"],
            json!("ba4908a6-7385-4628-b65e-550a98690d44")
        );
        assert_eq!(chain[0].args, vec![json!(100)]);
        assert!(!chain[0].immutable);
        assert_eq!(chain[0].subtask_type, None);
        assert_eq!(msg.embed.callbacks, None);
        assert_eq!(msg.embed.chord, None);
    }

    #[test]
    fn chord_header_member_keeps_group_and_chord_callback() {
        let msg = decoded("A_monitor_producer.txt:69");
        assert_eq!(
            msg.group.as_deref(),
            Some("35b6f3a9-fdda-460f-b453-cc77c0b5997b")
        );
        assert_eq!(msg.group_index, Some(0));
        let chord = msg.embed.chord.unwrap();
        assert_eq!(chord["task"], json!("app.tsum"));
        assert_eq!(
            chord["options"]["task_id"],
            json!("4a7d421a-5fcb-444e-9b3f-86c17f2c4aff")
        );
    }

    #[test]
    fn ignore_result_header_true_reads_true_and_null_reads_false() {
        assert!(decoded("D_ignore_result/monitor_producer.txt:19").ignore_result);
        let by_name = decoded("D_ignore_result/monitor_producer.txt:23");
        assert!(!by_name.ignore_result);
        assert_eq!(by_name.headers["ignore_result"], Value::Null);
    }

    #[test]
    fn restored_message_reads_as_redelivered() {
        let msg = decoded("C_acks_late_0/monitor.txt:199");
        assert!(msg.redelivered);
        assert_eq!(msg.eta, Some(ts("2026-11-24T09:31:00.695894+00:00")));
        assert_eq!(msg.headers["redelivered"], json!(true));
    }

    #[test]
    fn worker_published_messages_carry_parent_and_root() {
        let step = decoded("B_monitor_worker.txt:383");
        assert_eq!(
            step.parent_id.as_deref(),
            Some("ba4908a6-7385-4628-b65e-550a98690d44")
        );
        assert_eq!(step.root_id, "32165bd7-b7af-496d-a3df-1497b4d17e2d");
        assert_eq!(step.embed.chain, Some(vec![]));
        let retry = decoded("B_monitor_worker.txt:364");
        assert_eq!(retry.retries, 1);
        assert_eq!(retry.parent_id.as_deref(), Some(retry.id.as_str()));
    }

    // -----------------------------------------------------------------------------------------
    // Queue keys
    // -----------------------------------------------------------------------------------------

    #[test]
    fn queue_key_maps_priorities_to_kombu_steps() {
        let cases = [
            (0, "dataset"),
            (2, "dataset"),
            (3, "dataset\x06\x163"),
            (5, "dataset\x06\x163"),
            (7, "dataset\x06\x166"),
            (9, "dataset\x06\x169"),
            (12, "dataset\x06\x169"),
        ];
        for (priority, key) in cases {
            assert_eq!(queue_key("dataset", priority), key, "priority {priority}");
        }
    }

    #[test]
    fn queue_of_key_strips_only_a_priority_suffix() {
        assert_eq!(queue_of_key("dataset\x06\x166"), "dataset");
        assert_eq!(queue_of_key("dataset\x06\x163"), "dataset");
        assert_eq!(queue_of_key("celery"), "celery");
        assert_eq!(queue_of_key("odd\x06\x16name"), "odd\x06\x16name");
        assert_eq!(queue_of_key("trailing\x06\x16"), "trailing\x06\x16");
        assert_eq!(queue_of_key(""), "");
        for priority in 0..=12 {
            assert_eq!(queue_of_key(&queue_key("q", priority)), "q");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Encoding
    // -----------------------------------------------------------------------------------------

    #[test]
    fn new_task_has_fresh_uuid4_and_celery_defaults() {
        let a = NewTask::new("app.add", "celery");
        let b = NewTask::new("app.add", "celery");
        assert_ne!(a.id, b.id);
        assert_eq!(uuid::Uuid::parse_str(&a.id).unwrap().get_version_num(), 4);
        assert_eq!((a.priority, a.retries, a.ignore_result), (0, 0, None));
        assert_eq!(a.embed, Embed::default());
        let (key, envelope) = encode(&a);
        assert_eq!(key, "celery");
        let env: Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(env["headers"]["root_id"], json!(a.id));
        assert_eq!(env["headers"]["ignore_result"], Value::Null);
        assert_eq!(env["properties"]["correlation_id"], json!(a.id));
        assert!(env["properties"].get("expiration").is_none());
        assert!(env["properties"].get("origin").is_none());
        assert_eq!(
            body_of(&envelope),
            json!([[], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
        );
    }

    #[test]
    fn encode_then_decode_round_trips_every_field() {
        let mut task = NewTask::new("pkg.index_document", "dataset");
        task.args = vec![
            json!("héllo ✓ 😀"),
            json!(1.5),
            json!(null),
            json!([1, {"a": true}]),
        ];
        task.kwargs = json!({"doc_id": 42, "tags": ["x", "y"]})
            .as_object()
            .unwrap()
            .clone();
        task.embed.callbacks = Some(vec![Signature {
            task: "pkg.notify".into(),
            args: vec![json!(1)],
            kwargs: Map::new(),
            options: json!({"queue": "mail"}).as_object().unwrap().clone(),
            subtask_type: None,
            immutable: true,
            extra: Map::new(),
        }]);
        task.priority = 7;
        task.eta = Some(ts("2026-11-24T09:28:05.227235+00:00"));
        task.expires = Some(ts("2026-11-24T09:29:35.227235+00:00"));
        task.retries = 2;
        task.root_id = Some("root-1".into());
        task.parent_id = Some("parent-1".into());
        task.group = Some("group-1".into());
        task.group_index = Some(3);
        task.timelimit = (Some(30.0), Some(25.5));
        task.ignore_result = Some(true);
        task.origin = "taskbox@host".into();
        task.extra_headers.insert("x-trace".into(), json!("abc"));

        let (key, envelope) = encode_at(&task, ts("2026-11-24T09:27:35.227235+00:00"));
        assert_eq!(key, "dataset\x06\x166");
        assert!(envelope.is_ascii(), "ensure_ascii like json.dumps");
        let msg = decode(envelope.as_bytes()).unwrap();
        assert_eq!(msg.id, task.id);
        assert_eq!(msg.task, task.task);
        assert_eq!(msg.args, task.args);
        assert_eq!(msg.kwargs, task.kwargs);
        assert_eq!(msg.embed, task.embed);
        assert_eq!(msg.eta, task.eta);
        assert_eq!(msg.expires, task.expires);
        assert_eq!(msg.retries, 2);
        assert_eq!(msg.root_id, "root-1");
        assert_eq!(msg.parent_id.as_deref(), Some("parent-1"));
        assert_eq!(msg.group.as_deref(), Some("group-1"));
        assert_eq!(msg.group_index, Some(3));
        assert_eq!(msg.timelimit, (Some(30.0), Some(25.5)));
        assert!(msg.ignore_result);
        assert_eq!(msg.priority, 7);
        assert_eq!(msg.routing_key, "dataset");
        assert_eq!(msg.origin.as_deref(), Some("taskbox@host"));
        assert_eq!(msg.headers["x-trace"], json!("abc"));
        assert_eq!(
            msg.headers["argsrepr"],
            json!("('héllo ✓ 😀', 1.5, None, [1, {'a': True}])")
        );
        assert_eq!(
            msg.headers["kwargsrepr"],
            json!("{'doc_id': 42, 'tags': ['x', 'y']}")
        );
        assert_eq!(msg.envelope["properties"]["expiration"], json!("120000"));
        assert_eq!(msg.envelope["properties"]["origin"], json!("taskbox@host"));
        assert!(!msg.redelivered);
        assert_ne!(
            msg.delivery_tag,
            msg.envelope["properties"]["reply_to"].as_str().unwrap()
        );
    }

    #[test]
    fn expiration_in_the_past_is_zero_like_celery() {
        let mut task = NewTask::new("app.add", "celery");
        task.expires = Some(ts("2020-01-01T00:00:00+00:00"));
        let (_, envelope) = encode(&task);
        let env: Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(env["properties"]["expiration"], json!("0"));
    }

    #[test]
    fn extra_headers_fill_passthrough_slots_but_never_override_computed_ones() {
        let mut task = NewTask::new("app.add", "celery");
        task.origin = "taskbox@host".into();
        for (key, value) in [
            ("stamps", json!({"s": 1})),
            ("replaced_task_nesting", json!(2)),
            ("retries", json!(99)),
            ("id", json!("forged")),
            ("compression", json!("application/x-gzip")),
            ("tenant", json!("acme")),
        ] {
            task.extra_headers.insert(key.into(), value);
        }
        let msg = decode(encode(&task).1.as_bytes()).unwrap();
        assert_eq!(msg.headers["stamps"], json!({"s": 1}));
        assert_eq!(msg.headers["replaced_task_nesting"], json!(2));
        assert_eq!(msg.headers["tenant"], json!("acme"));
        assert_eq!(msg.retries, 0);
        assert_eq!(msg.id, task.id);
        assert!(!msg.headers.contains_key("compression"));
    }

    #[test]
    fn encoded_envelope_has_celery_key_order_and_spacing() {
        let mut task = NewTask::new("app.add", "celery");
        task.args = vec![json!(13), json!(100)];
        task.embed.chain = Some(vec![]);
        task.root_id = Some("32165bd7-b7af-496d-a3df-1497b4d17e2d".into());
        task.parent_id = Some("ba4908a6-7385-4628-b65e-550a98690d44".into());
        task.id = "768d321d-6fba-41a5-9f49-f932ee73572a".into();
        task.ignore_result = Some(false);
        task.origin = "gen14293@vm".into();
        let captured = fixture("B_monitor_worker.txt:383").raw;
        let (key, ours) = encode(&task);
        assert_eq!(key, "celery");
        // The body is byte-identical (no maps with more than one key to reorder).
        let ours_env: Value = serde_json::from_str(&ours).unwrap();
        let captured_env: Value = serde_json::from_str(captured).unwrap();
        assert_eq!(ours_env["body"], captured_env["body"]);
        assert_eq!(align_random_fields(&ours, captured), captured);
    }

    // -----------------------------------------------------------------------------------------
    // Chains, callbacks, retries, restores
    // -----------------------------------------------------------------------------------------

    #[test]
    fn chain_step_reproduces_captured_second_step() {
        let root = decoded("A_monitor_producer.txt:53");
        let step = next_chain_step(&root, &json!(3), &celery_queue, "gen14293@vm").unwrap();
        assert_eq!(step.id, "ba4908a6-7385-4628-b65e-550a98690d44");
        assert_eq!(step.task, "app.add");
        assert_eq!(step.args, vec![json!(3), json!(10)]);
        assert_eq!(
            step.parent_id.as_deref(),
            Some("32165bd7-b7af-496d-a3df-1497b4d17e2d")
        );
        assert_eq!(
            step.root_id.as_deref(),
            Some("32165bd7-b7af-496d-a3df-1497b4d17e2d")
        );
        let chain = step.embed.chain.as_deref().unwrap();
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].args, vec![json!(100)]);
        assert_eq!(
            chain[0].options["task_id"],
            json!("768d321d-6fba-41a5-9f49-f932ee73572a")
        );
        assert_eq!((step.queue.as_str(), step.priority), ("celery", 0));

        let captured = fixture("B_monitor_worker.txt:247").raw;
        let (key, ours) = encode(&step);
        assert_eq!(key, "celery");
        assert_eq!(align_random_fields(&ours, captured), captured);
    }

    #[test]
    fn chain_step_reproduces_captured_last_step_with_empty_chain() {
        let second = decoded("B_monitor_worker.txt:247");
        let last = next_chain_step(&second, &json!(13), &celery_queue, "gen14293@vm").unwrap();
        assert_eq!(last.embed.chain, Some(vec![]));
        assert_eq!(
            last.parent_id.as_deref(),
            Some("ba4908a6-7385-4628-b65e-550a98690d44")
        );
        let captured = fixture("B_monitor_worker.txt:383").raw;
        let (_, ours) = encode(&last);
        let ours_env: Value = serde_json::from_str(&ours).unwrap();
        let captured_env: Value = serde_json::from_str(captured).unwrap();
        assert_eq!(
            ours_env["body"], captured_env["body"],
            "body bytes identical"
        );
        assert_eq!(align_random_fields(&ours, captured), captured);
        // And the 5.6.3 capture of the same shape.
        let old_root = decoded("F_celery563_kombu562/monitor.txt:30");
        let old_step = next_chain_step(&old_root, &json!(3), &celery_queue, "gen16426@vm").unwrap();
        let old_captured = fixture("F_celery563_kombu562/monitor.txt:178").raw;
        assert_eq!(
            align_random_fields(&encode(&old_step).1, old_captured),
            old_captured
        );
    }

    #[test]
    fn next_chain_step_is_none_without_a_chain() {
        let plain = decoded("A_monitor_producer.txt:25");
        assert_eq!(next_chain_step(&plain, &json!(5), &celery_queue, "o"), None);
        let last = decoded("B_monitor_worker.txt:383");
        assert_eq!(
            next_chain_step(&last, &json!(113), &celery_queue, "o"),
            None
        );
    }

    fn message_with_embed(priority: u8, embed: Value) -> TaskMessage {
        let raw = mutate(fixture("A_monitor_producer.txt:25").raw, |env| {
            properties_mut(env).insert("priority".into(), json!(priority));
            let body = json!([[2, 3], {}, embed]).to_string();
            env.insert("body".into(), Value::from(BASE64_OUT.encode(body)));
        });
        decode(&raw).unwrap()
    }

    #[test]
    fn chain_step_honours_immutable_options_queue_and_parent_priority() {
        let link = json!({"task": "pkg.notify", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false});
        let msg = message_with_embed(
            7,
            json!({"chain": [
                {"task": "pkg.last", "args": [], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false},
                {"task": "pkg.next", "args": ["fixed"], "kwargs": {"k": 1},
                 "options": {"queue": "dataset", "countdown": 60, "link": [link], "time_limit": 30},
                 "subtask_type": null, "immutable": true}
            ]}),
        );
        let before = Timestamp::now();
        let step = next_chain_step(&msg, &json!(5), &celery_queue, "taskbox@h").unwrap();
        assert_eq!(
            step.args,
            vec![json!("fixed")],
            "immutable: result not prepended"
        );
        assert_eq!(step.kwargs["k"], json!(1));
        assert_eq!(step.queue, "dataset");
        assert_eq!(step.priority, 7);
        assert_eq!(
            uuid::Uuid::parse_str(&step.id).unwrap().get_version_num(),
            4
        );
        assert_eq!(step.embed.callbacks.as_ref().unwrap()[0].task, "pkg.notify");
        assert_eq!(step.timelimit, (Some(30.0), None));
        assert_eq!(step.origin, "taskbox@h");
        let eta = step.eta.unwrap();
        assert!(eta >= before.checked_add(SignedDuration::from_secs(60)).unwrap());
        assert_eq!(step.embed.chain.as_ref().unwrap()[0].task, "pkg.last");
        assert_eq!(encode(&step).0, "dataset\x06\x166");
        // Without options.queue the task's default route is used.
        let next = next_chain_step(&msg, &json!(5), &|task: &str| format!("q-{task}"), "o");
        let mut step = next.unwrap();
        step.embed.chain = None;
        let msg2 = TaskMessage {
            embed: Embed {
                chain: Some(vec![Signature {
                    options: Map::new(),
                    ..msg.embed.chain.as_ref().unwrap()[0].clone()
                }]),
                ..Embed::default()
            },
            ..msg.clone()
        };
        let step2 =
            next_chain_step(&msg2, &json!(5), &|task: &str| format!("q-{task}"), "o").unwrap();
        assert_eq!(step2.queue, "q-pkg.last");
        assert_eq!(step2.args, vec![json!(5)]);
        assert_eq!(step2.embed.chain, Some(vec![]));
    }

    #[test]
    fn retry_of_reproduces_captured_first_retry() {
        let original = decoded("A_monitor_producer.txt:79");
        let retry = retry_of(
            &original,
            ts("2026-11-24T09:28:09.420030+00:00"),
            "taskbox@h",
        );
        assert_eq!(retry.id, original.id);
        assert_eq!(retry.retries, 1);
        assert_eq!(retry.parent_id.as_deref(), Some(original.id.as_str()));
        assert_eq!(retry.root_id.as_deref(), Some(original.root_id.as_str()));
        assert_eq!(
            retry.origin, "gen13858@vm",
            "Celery keeps the request's origin"
        );
        let captured = fixture("B_monitor_worker.txt:364").raw;
        let (key, ours) = encode(&retry);
        assert_eq!(key, "celery");
        assert_eq!(align_random_fields(&ours, captured), captured);
    }

    #[test]
    fn retry_of_increments_retries_and_sets_parent_id() {
        let first_retry = decoded("B_monitor_worker.txt:364");
        let eta = ts("2026-11-24T09:28:10.421274+00:00");
        let second = retry_of(&first_retry, eta, "taskbox@h");
        assert_eq!(second.retries, 2);
        assert_eq!(second.eta, Some(eta));
        assert_eq!(second.parent_id.as_deref(), Some(first_retry.id.as_str()));
        let captured = fixture("B_monitor_worker.txt:469").raw;
        assert_eq!(align_random_fields(&encode(&second).1, captured), captured);
        // Priority and queue are kept.
        let high = decoded("A_monitor_producer.txt:38");
        let retry = retry_of(&high, eta, "taskbox@h");
        assert_eq!(encode(&retry).0, "dataset\x06\x166");
        assert_eq!(retry.expires, high.expires);
    }

    #[test]
    fn retry_of_passes_custom_headers_and_drops_redelivered() {
        let raw = mutate(fixture("C_acks_late_0/monitor.txt:199").raw, |env| {
            headers_mut(env).insert("tenant".into(), json!("acme"));
        });
        let msg = decode(&raw).unwrap();
        assert!(msg.redelivered);
        let retry = retry_of(&msg, Timestamp::now(), "taskbox@h");
        assert_eq!(retry.extra_headers["tenant"], json!("acme"));
        assert!(!retry.extra_headers.contains_key("redelivered"));
        assert!(!retry.extra_headers.contains_key("retries"));
        let again = decode(encode(&retry).1.as_bytes()).unwrap();
        assert_eq!(again.headers["tenant"], json!("acme"));
        assert!(!again.redelivered);
        assert_eq!(again.retries, 1);
        // A message without origin gets the worker's.
        let bare = decode(&mutate(fixture("A_monitor_producer.txt:25").raw, |env| {
            headers_mut(env).remove("origin");
        }))
        .unwrap();
        assert_eq!(
            retry_of(&bare, Timestamp::now(), "taskbox@h").origin,
            "taskbox@h"
        );
    }

    #[test]
    fn callbacks_prepend_result_and_set_parent_and_root() {
        let sig = |task: &str, immutable: bool| json!({"task": task, "args": [1], "kwargs": {}, "options": {"task_id": format!("id-{task}")}, "subtask_type": null, "immutable": immutable});
        let one = message_with_embed(3, json!({"callbacks": [sig("a", false)]}));
        let tasks = callbacks(&one, &json!("r"), &celery_queue, "taskbox@h");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id, "id-a");
        assert_eq!(tasks[0].args, vec![json!("r"), json!(1)]);
        assert_eq!(tasks[0].parent_id.as_deref(), Some(one.id.as_str()));
        assert_eq!(tasks[0].root_id.as_deref(), Some(one.root_id.as_str()));
        assert_eq!(tasks[0].priority, 3);
        assert_eq!(tasks[0].group, None, "a single callback is not a group");

        let many = message_with_embed(0, json!({"callbacks": [sig("a", false), sig("b", true)]}));
        let tasks = callbacks(&many, &json!("r"), &celery_queue, "taskbox@h");
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[1].args, vec![json!(1)], "immutable");
        assert!(tasks[0].group.is_some());
        assert_eq!(tasks[0].group, tasks[1].group);
        assert_eq!(
            (tasks[0].group_index, tasks[1].group_index),
            (Some(0), Some(1))
        );

        let none = decoded("A_monitor_producer.txt:25");
        assert!(callbacks(&none, &json!(5), &celery_queue, "o").is_empty());
    }

    #[test]
    fn callbacks_expand_nested_chain_and_group() {
        let plain = |task: &str| json!({"task": task, "args": [], "kwargs": {}, "options": {"task_id": format!("id-{task}")}, "subtask_type": null, "immutable": false});
        let chain = json!({"task": "celery.chain", "args": [], "kwargs": {"tasks": [plain("a"), plain("b"), plain("c")]}, "options": {}, "subtask_type": "chain", "immutable": false});
        let group = json!({"task": "celery.group", "args": [], "kwargs": {"tasks": [plain("x"), plain("y")]}, "options": {"task_id": "gid"}, "subtask_type": "group", "immutable": false});
        let msg = message_with_embed(0, json!({"callbacks": [chain]}));
        let tasks = callbacks(&msg, &json!(7), &celery_queue, "o");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].task, "a");
        assert_eq!(tasks[0].args, vec![json!(7)]);
        let rest: Vec<&str> = tasks[0]
            .embed
            .chain
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.task.as_str())
            .collect();
        assert_eq!(rest, ["c", "b"], "remaining chain is reversed");

        let msg = message_with_embed(0, json!({"callbacks": [group]}));
        let tasks = callbacks(&msg, &json!(7), &celery_queue, "o");
        assert_eq!(tasks.len(), 2);
        for (i, task) in tasks.iter().enumerate() {
            assert_eq!(task.args, vec![json!(7)]);
            assert_eq!(task.group.as_deref(), Some("gid"));
            assert_eq!(task.group_index, Some(i as u64));
        }
    }

    #[test]
    fn redelivered_matches_captured_restore_byte_for_byte() {
        let original = decoded("C_acks_late_0/monitor.txt:22");
        let (key, restored) = redelivered(&original);
        assert_eq!(key, "dataset");
        assert_eq!(restored, fixture("C_acks_late_0/monitor.txt:199").raw);
        let high = decoded("A_monitor_producer.txt:38");
        let (key, restored) = redelivered(&high);
        assert_eq!(key, "dataset\x06\x166");
        let again = decode(restored.as_bytes()).unwrap();
        assert!(again.redelivered);
        assert_eq!(again.delivery_tag, high.delivery_tag);
        assert_eq!(again.envelope["body"], high.envelope["body"]);
    }

    // -----------------------------------------------------------------------------------------
    // Timestamps
    // -----------------------------------------------------------------------------------------

    #[test]
    fn format_timestamp_writes_celery_form() {
        let text = "2026-11-24T09:28:05.227235+00:00";
        assert_eq!(format_timestamp(ts(text)), text);
        assert_eq!(
            format_timestamp(ts("2026-11-24T09:28:05Z")),
            "2026-11-24T09:28:05.000000+00:00"
        );
        assert_eq!(
            format_timestamp(ts("2026-11-24T11:28:05.5+02:00")),
            "2026-11-24T09:28:05.500000+00:00"
        );
        assert_eq!(
            format_timestamp(ts("2026-11-24T09:28:05.123456789Z")),
            "2026-11-24T09:28:05.123456+00:00",
            "nanoseconds truncate to Python's microseconds"
        );
        assert_eq!(
            format_timestamp(ts("1969-12-31T23:59:59.999999Z")),
            "1969-12-31T23:59:59.999999+00:00"
        );
    }

    #[test]
    fn naive_timestamps_read_as_utc() {
        assert_eq!(
            ts("2026-11-24T09:28:05.227235"),
            ts("2026-11-24T09:28:05.227235+00:00")
        );
        let raw = mutate(fixture("A_monitor_producer.txt:25").raw, |env| {
            headers_mut(env).insert("eta".into(), json!("2026-11-24T09:28:05"));
        });
        assert_eq!(decode(&raw).unwrap().eta, Some(ts("2026-11-24T09:28:05Z")));
        assert_eq!(parse_timestamp("not a date"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    // -----------------------------------------------------------------------------------------
    // Decode errors: one per kind, each naming the offending value
    // -----------------------------------------------------------------------------------------

    const PLAIN: &str = "A_monitor_producer.txt:25";
    const PLAIN_ID: &str = "e6cfb46d-4244-4378-914c-57ae3523184d";

    fn assert_identity(err: &DecodeError) {
        assert_eq!(err.task_id.as_deref(), Some(PLAIN_ID), "{err}");
        assert_eq!(err.task_name.as_deref(), Some("app.add"), "{err}");
    }

    fn assert_lowercase_first(err: &DecodeError) {
        let first = err.reason.chars().next().unwrap();
        assert!(
            first.is_lowercase() || err.kind == DecodeErrorKind::ProtocolV1,
            "{err}"
        );
        assert!(!err.reason.ends_with('.'), "{err}");
    }

    #[test]
    fn non_json_is_not_json_quoting_the_bytes() {
        let err = decode_err(b"hello world");
        assert_eq!(err.kind, DecodeErrorKind::NotJson);
        assert!(err.reason.contains("hello world"), "{err}");
        assert_eq!((err.task_id, err.task_name), (None, None));
        let err = decode_err(&[0xff, 0xfe, 0x00]);
        assert_eq!(err.kind, DecodeErrorKind::NotJson);
        assert_lowercase_first(&err);
    }

    #[test]
    fn json_that_is_not_an_envelope_is_not_an_envelope() {
        let err = decode_err(b"[1, 2]");
        assert_eq!(err.kind, DecodeErrorKind::NotAnEnvelope);
        assert!(err.reason.contains("[1,2]"), "{err}");
        assert_lowercase_first(&err);

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            env.remove("properties");
        }));
        assert_eq!(err.kind, DecodeErrorKind::NotAnEnvelope);
        assert!(err.reason.contains("properties"), "{err}");
        assert_identity(&err);

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            env.insert("body".into(), json!(12345));
        }));
        assert_eq!(err.kind, DecodeErrorKind::NotAnEnvelope);
        assert!(err.reason.contains("12345"), "{err}");

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            env.insert("headers".into(), json!("h-string"));
        }));
        assert_eq!(err.kind, DecodeErrorKind::NotAnEnvelope);
        assert!(err.reason.contains("h-string"), "{err}");
    }

    #[test]
    fn pickle_msgpack_yaml_and_others_are_unsupported_content_types() {
        let with_type = |ct: &str| {
            decode_err(&mutate(fixture(PLAIN).raw, |env| {
                env.insert("content-type".into(), json!(ct));
            }))
        };
        let err = with_type("application/x-python-serialize");
        assert_eq!(err.kind, DecodeErrorKind::UnsupportedContentType);
        assert_eq!(
            err.reason,
            "content type application/x-python-serialize (pickle) is refused: configure the \
             producer with task_serializer='json'"
        );
        assert_identity(&err);
        for (ct, name) in [
            ("application/x-msgpack", "msgpack"),
            ("application/x-yaml", "yaml"),
        ] {
            let err = with_type(ct);
            assert_eq!(err.kind, DecodeErrorKind::UnsupportedContentType);
            assert!(
                err.reason.contains(ct) && err.reason.contains(name),
                "{err}"
            );
            assert!(err.reason.contains("task_serializer='json'"), "{err}");
        }
        let err = with_type("text/plain");
        assert!(err.reason.contains("\"text/plain\""), "{err}");
        assert_lowercase_first(&err);
        assert!(
            decode(&mutate(fixture(PLAIN).raw, |env| {
                env.insert(
                    "content-type".into(),
                    json!("application/json; charset=utf-8"),
                );
            }))
            .is_ok()
        );
    }

    #[test]
    fn body_encoding_other_than_base64_is_unsupported_encoding() {
        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            properties_mut(env).insert("body_encoding".into(), json!("gzip"));
        }));
        assert_eq!(err.kind, DecodeErrorKind::UnsupportedEncoding);
        assert!(err.reason.contains("\"gzip\""), "{err}");
        assert!(err.reason.contains("base64"), "{err}");
        assert_identity(&err);
        assert_lowercase_first(&err);
    }

    #[test]
    fn missing_body_encoding_reads_the_body_as_is_like_kombu() {
        let raw = mutate(fixture(PLAIN).raw, |env| {
            properties_mut(env).remove("body_encoding");
            env.insert("body".into(), json!("[[7, 8], {}, null]"));
        });
        let msg = decode(&raw).unwrap();
        assert_eq!(msg.args, vec![json!(7), json!(8)]);
        assert_eq!(msg.embed, Embed::default());
    }

    #[test]
    fn unknown_compression_is_unsupported_compression() {
        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            headers_mut(env).insert("compression".into(), json!("application/x-bz2"));
        }));
        assert_eq!(err.kind, DecodeErrorKind::UnsupportedCompression);
        assert!(err.reason.contains("application/x-bz2"), "{err}");
        assert_identity(&err);
        assert_lowercase_first(&err);
    }

    #[test]
    fn invalid_base64_is_bad_base64() {
        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            env.insert("body".into(), json!("!!not*base64!!"));
        }));
        assert_eq!(err.kind, DecodeErrorKind::BadBase64);
        assert!(err.reason.contains("!!not*base64!!"), "{err}");
        assert_identity(&err);
        assert_lowercase_first(&err);
    }

    #[test]
    fn base64_without_padding_or_with_newlines_is_accepted() {
        let body = "[[1], {}, null]";
        let encoded = BASE64_OUT.encode(body);
        let wrapped = format!("{}\n{}", &encoded[..8], encoded[8..].trim_end_matches('='));
        let msg = decode(&mutate(fixture(PLAIN).raw, |env| {
            env.insert("body".into(), json!(wrapped));
        }))
        .unwrap();
        assert_eq!(msg.args, vec![json!(1)]);
    }

    #[test]
    fn malformed_bodies_are_bad_body_naming_what_is_wrong() {
        let cases = [
            ("not json at all", "not json at all"),
            ("{\"a\": 1}", "body is a JSON object"),
            ("[[], {}]", "body array has 2 elements"),
            (
                "[{\"x\": 1}, {}, null]",
                "body args is a JSON object ({\"x\":1})",
            ),
            ("[[], [9], null]", "body kwargs is a JSON array ([9])"),
            ("[[], {}, \"emb\"]", "body embed is a JSON string (\"emb\")"),
            ("[[], {}, {\"chain\": [42]}]", "body embed is malformed"),
            (
                "[[], {}, {\"chain\": [{\"args\": []}]}]",
                "missing field `task`",
            ),
        ];
        for (body, expected) in cases {
            let err = decode_err(&with_body(fixture(PLAIN).raw, body));
            assert_eq!(err.kind, DecodeErrorKind::BadBody, "{body}: {err}");
            assert!(err.reason.contains(expected), "{body}: {err}");
            assert_identity(&err);
            assert_lowercase_first(&err);
        }
    }

    #[test]
    fn bad_header_values_are_bad_body_naming_the_header() {
        let cases = [
            ("eta", json!("tomorrow-ish"), "headers.eta \"tomorrow-ish\""),
            ("expires", json!(12345), "headers.expires is 12345"),
            ("retries", json!("three"), "headers.retries is \"three\""),
            ("retries", json!(-1), "headers.retries is -1"),
            ("timelimit", json!("soon"), "headers.timelimit is \"soon\""),
            (
                "timelimit",
                json!([1, "x"]),
                "headers.timelimit is [1,\"x\"]",
            ),
        ];
        for (header, value, expected) in cases {
            let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
                headers_mut(env).insert(header.into(), value.clone());
            }));
            assert_eq!(err.kind, DecodeErrorKind::BadBody, "{header}: {err}");
            assert!(err.reason.contains(expected), "{header}: {err}");
            assert_identity(&err);
        }
    }

    #[test]
    fn protocol_v1_message_is_reported_with_its_body_task_id() {
        let raw = mutate(fixture(PLAIN).raw, |env| {
            env.insert("headers".into(), json!({}));
            let body = json!({"task": "app.add", "id": "v1-id", "args": [1, 2], "kwargs": {}});
            env.insert(
                "body".into(),
                Value::from(BASE64_OUT.encode(body.to_string())),
            );
        });
        let err = decode_err(&raw);
        assert_eq!(err.kind, DecodeErrorKind::ProtocolV1);
        assert_eq!(
            err.reason,
            "Celery message protocol 1 is not supported; set task_protocol=2 on the producer"
        );
        assert_eq!(err.task_id.as_deref(), Some("v1-id"));
        assert_eq!(err.task_name.as_deref(), Some("app.add"));
    }

    #[test]
    fn missing_required_fields_are_missing_field() {
        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            headers_mut(env).remove("id");
        }));
        assert_eq!(err.kind, DecodeErrorKind::MissingField);
        assert!(err.reason.contains("headers.id is missing"), "{err}");
        assert_eq!(err.task_name.as_deref(), Some("app.add"));
        assert_eq!(err.task_id, None);

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            headers_mut(env).insert("task".into(), json!(7));
        }));
        assert_eq!(err.kind, DecodeErrorKind::MissingField);
        assert!(err.reason.contains("headers.task is 7"), "{err}");
        assert_eq!(err.task_id.as_deref(), Some(PLAIN_ID));

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            properties_mut(env).remove("delivery_tag");
        }));
        assert_eq!(err.kind, DecodeErrorKind::MissingField);
        assert!(
            err.reason.contains("properties.delivery_tag is missing"),
            "{err}"
        );
        assert_identity(&err);
        assert_lowercase_first(&err);
    }

    #[test]
    fn long_offending_values_are_truncated_in_reasons() {
        let long = format!("application/{}", "z".repeat(5000));
        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            env.insert("content-type".into(), json!(long));
        }));
        assert!(err.reason.len() < 400, "{} chars", err.reason.len());
        assert!(err.reason.contains("application/zzz"), "{err}");
        assert!(err.reason.contains("..."), "{err}");
        let err = decode_err("x".repeat(100_000).as_bytes());
        assert!(err.reason.len() < 400, "{} chars", err.reason.len());
    }

    #[test]
    fn error_kind_serializes_as_its_variant_name() {
        assert_eq!(
            serde_json::to_string(&DecodeErrorKind::BadBody).unwrap(),
            "\"BadBody\""
        );
        let err = decode_err(b"{}");
        assert_eq!(err.to_string(), err.reason);
    }

    // -----------------------------------------------------------------------------------------
    // kombu type tags and compression
    // -----------------------------------------------------------------------------------------

    #[test]
    fn kombu_type_tags_are_decoded_in_args_kwargs_and_signatures() {
        let dt = json!({"__type__": "datetime", "__value__": "2026-11-24T09:28:05.227235+00:00"});
        let uuid =
            json!({"__type__": "uuid", "__value__": {"hex": "194458a478744a2d8e0d7f564ab0b6de"}});
        let dec = json!({"__type__": "decimal", "__value__": "3.14"});
        let bytes = json!({"__type__": "bytes", "__value__": "raw text"});
        let b64 = json!({"__type__": "base64", "__value__": "//79"});
        let date = json!({"__type__": "date", "__value__": "2026-11-24"});
        let time = json!({"__type__": "time", "__value__": "09:28:05"});
        let unknown = json!({"__type__": "frobnicator", "__value__": 1});
        let extra_key = json!({"__type__": "decimal", "__value__": "1", "other": 2});
        let body = json!([
            [dt, [uuid, {"deep": [dec]}], unknown, extra_key],
            {"when": date, "at": time, "blob": bytes, "b64": b64},
            {"chain": [{"task": "t", "args": [dt], "kwargs": {"u": uuid}, "options": {}}]}
        ]);
        let msg = decode(&with_body(fixture(PLAIN).raw, &body.to_string())).unwrap();
        assert_eq!(
            Value::Array(msg.args),
            json!([
                "2026-11-24T09:28:05.227235+00:00",
                ["194458a478744a2d8e0d7f564ab0b6de", {"deep": ["3.14"]}],
                {"__type__": "frobnicator", "__value__": 1},
                {"__type__": "decimal", "__value__": "1", "other": 2}
            ])
        );
        assert_eq!(
            Value::Object(msg.kwargs),
            json!({"when": "2026-11-24", "at": "09:28:05", "blob": "raw text", "b64": "//79"})
        );
        let sig = &msg.embed.chain.unwrap()[0];
        assert_eq!(sig.args, vec![json!("2026-11-24T09:28:05.227235+00:00")]);
        assert_eq!(sig.kwargs["u"], json!("194458a478744a2d8e0d7f564ab0b6de"));
        assert_eq!(
            decode_kombu_tags(json!({"__type__": "uuid", "__value__": 5})),
            json!({"__type__": "uuid", "__value__": 5})
        );
    }

    fn compressed_message(header: &str, gzip_format: bool, body: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let compressed = if gzip_format {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(body).unwrap();
            enc.finish().unwrap()
        } else {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(body).unwrap();
            enc.finish().unwrap()
        };
        mutate(fixture(PLAIN).raw, |env| {
            headers_mut(env).insert("compression".into(), json!(header));
            env.insert("body".into(), Value::from(BASE64_OUT.encode(compressed)));
        })
    }

    #[test]
    fn gzip_and_zlib_compressed_bodies_decode() {
        let body = b"[[1, 2], {\"k\": \"v\"}, null]";
        for (header, gzip_format) in [
            ("application/x-gzip", false), // what kombu really writes: zlib.compress
            ("application/x-gzip", true),
            ("application/x-zlib", false),
            ("zlib", false),
        ] {
            let msg = decode(&compressed_message(header, gzip_format, body)).unwrap();
            assert_eq!(
                msg.args,
                vec![json!(1), json!(2)],
                "{header} gzip={gzip_format}"
            );
            assert_eq!(msg.kwargs["k"], json!("v"));
        }
    }

    #[test]
    fn oversized_or_corrupt_compressed_body_is_bad_body() {
        let big = format!("[[\"{}\"], {{}}, null]", "a".repeat(4096));
        let raw = compressed_message("application/x-gzip", false, big.as_bytes());
        assert!(decode(&raw).is_ok());
        let err = decode_with_limit(&raw, 1024).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadBody);
        assert!(err.reason.contains("more than 1024 bytes"), "{err}");
        assert_identity(&err);

        let err = decode_err(&mutate(fixture(PLAIN).raw, |env| {
            headers_mut(env).insert("compression".into(), json!("application/x-gzip"));
        }));
        assert_eq!(err.kind, DecodeErrorKind::BadBody);
        assert!(
            err.reason
                .contains("does not decompress as \"application/x-gzip\""),
            "{err}"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Python-compatible rendering
    // -----------------------------------------------------------------------------------------

    #[test]
    fn python_json_matches_json_dumps() {
        let value =
            json!({"a": [1, 2.5, 1e16, 1.5e-5, 0.0001, -0.0, 123.0, "é😀\u{7f}\n\""], "b": null});
        assert_eq!(
            python_json(&value),
            r#"{"a": [1, 2.5, 1e+16, 1.5e-05, 0.0001, -0.0, 123.0, "\u00e9\ud83d\ude00\u007f\n\""], "b": null}"#
        );
        assert_eq!(python_float(1e22), "1e+22");
        assert_eq!(python_float(123456789012345.6), "123456789012345.6");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(-2.0), "-2.0");
    }

    #[test]
    fn argsrepr_and_kwargsrepr_match_celery() {
        assert_eq!(args_repr(&[json!(4), json!(5)]), "(4, 5)");
        assert_eq!(args_repr(&[json!(1.5)]), "(1.5,)");
        assert_eq!(args_repr(&[json!([2, 4])]), "([2, 4],)");
        assert_eq!(args_repr(&[]), "()");
        assert_eq!(
            args_repr(&[json!(null), json!(true), json!("it's"), json!("a\"b'c\n")]),
            "(None, True, \"it's\", 'a\"b\\'c\\n')"
        );
        let kwargs = json!({"x": 1, "y": 2});
        assert_eq!(kwargs_repr(kwargs.as_object().unwrap()), "{'x': 1, 'y': 2}");
        let long = args_repr(&[json!("z".repeat(5000))]);
        assert_eq!(long.chars().count(), REPR_MAX_CHARS + 3);
        assert!(long.ends_with("..."));
    }

    // -----------------------------------------------------------------------------------------
    // Robustness
    // -----------------------------------------------------------------------------------------

    /// Runs everything downstream of a successful decode, which must not panic either.
    fn exercise(raw: &[u8]) -> bool {
        match decode(raw) {
            Ok(msg) => {
                let now = Timestamp::now();
                let _ = next_chain_step(&msg, &json!(1), &celery_queue, "o").map(|t| encode(&t));
                for task in callbacks(&msg, &json!(1), &celery_queue, "o") {
                    let _ = encode(&task);
                }
                let _ = redelivered(&msg);
                let _ = encode(&retry_of(&msg, now, "o"));
                true
            }
            Err(err) => {
                assert!(!err.reason.is_empty());
                false
            }
        }
    }

    #[test]
    fn decode_never_panics_on_mutations_of_a_real_message() {
        let base = fixture("A_monitor_producer.txt:53").raw.as_bytes();
        assert!(exercise(base));

        // Every truncation is an error.
        for len in 0..base.len() {
            assert!(!exercise(&base[..len]), "truncated to {len} bytes decoded");
        }

        // Every byte replaced by a quote and by two of the other structural or invalid bytes
        // (rotating, so every pair of position class and byte is covered somewhere).
        let others = [
            b'{', b'}', b'[', b']', b'\\', b',', b':', 0, 0xff, b'x', b'0', b'-',
        ];
        for at in 0..base.len() {
            for byte in [
                b'"',
                others[at % others.len()],
                others[(at * 7 + 3) % others.len()],
            ] {
                let mut garbled = base.to_vec();
                garbled[at] = byte;
                exercise(&garbled);
            }
        }

        // Every envelope field replaced by values of every JSON type, or removed.
        let weird = [
            json!(null),
            json!(true),
            json!(-1),
            json!(1e300),
            json!(""),
            json!("x"),
            json!([]),
            json!({}),
            json!([null, null, null]),
            json!("2026-13-45T99:99:99"),
            json!({"__type__": "datetime", "__value__": 1}),
        ];
        let env: Value = serde_json::from_str(fixture("A_monitor_producer.txt:53").raw).unwrap();
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (key, value) in env.as_object().unwrap() {
            paths.push(vec![key.clone()]);
            if let Value::Object(inner) = value {
                for (k2, v2) in inner {
                    paths.push(vec![key.clone(), k2.clone()]);
                    if let Value::Object(inner2) = v2 {
                        for k3 in inner2.keys() {
                            paths.push(vec![key.clone(), k2.clone(), k3.clone()]);
                        }
                    }
                }
            }
        }
        for path in &paths {
            for replacement in weird.iter().map(Some).chain([None]) {
                let mut mutated = env.clone();
                let mut node = &mut mutated;
                for key in &path[..path.len() - 1] {
                    node = node.get_mut(key).unwrap();
                }
                let map = node.as_object_mut().unwrap();
                let last = path.last().unwrap();
                match replacement {
                    Some(value) => map.insert(last.clone(), value.clone()),
                    None => map.remove(last),
                };
                exercise(&serde_json::to_vec(&mutated).unwrap());
            }
        }

        // Hostile bodies: wrong shapes, odd canvases, extreme numbers, deep nesting.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let bodies = [
            "[]",
            "[[],{},{}]",
            "null",
            "[null,null,null]",
            r#"[[],{},{"chain":[{}]}]"#,
            r#"[[],{},{"chain":[{"task":1}]}]"#,
            r#"[[],{},{"chain":[{"task":"t","args":null,"kwargs":null,"options":null,"immutable":null}]}]"#,
            r#"[[],{},{"chain":[{"task":"t","options":{"queue":5,"countdown":1e308,"expires":-1e308,"eta":"bad","link":[1,{"task":"x"}],"link_error":{"task":"y"},"group_index":-3,"time_limit":"x"}}]}]"#,
            r#"[[],{},{"callbacks":[{"task":"a","subtask_type":"chain","kwargs":{"tasks":[]}},{"task":"g","subtask_type":"group","kwargs":{"tasks":"x"}},{"task":"c","subtask_type":"chord"}]}]"#,
            r#"[[],{},{"callbacks":[{"task":"a","subtask_type":"chain","kwargs":{"tasks":[{"task":"b","options":{"countdown":-1e20}}]}}]}]"#,
            &deep,
        ];
        for body in bodies {
            exercise(&with_body(fixture("A_monitor_producer.txt:53").raw, body));
        }

        // Pseudo-random bytes, and random bytes behind a valid envelope prefix.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert!(!exercise(&noise) || round > 0);
            let mut prefixed = base[..(next() as usize) % base.len()].to_vec();
            prefixed.extend_from_slice(&noise);
            exercise(&prefixed);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Captured fixtures: exact bytes pushed to Redis by Celery 5.7.0 / kombu 5.7.0 (and 5.6.3 /
    // 5.6.2 for F_*), taken from the MONITOR captures in shared/reference/celery-wire-samples.
    // `source` is the capture file and line; `key` the Redis list the bytes were pushed to.
    // -----------------------------------------------------------------------------------------

    struct Fixture {
        source: &'static str,
        key: &'static str,
        raw: &'static str,
        id: &'static str,
        task: &'static str,
        args: &'static str,
        kwargs: &'static str,
        eta: Option<&'static str>,
        expires: Option<&'static str>,
        priority: u8,
        retries: u32,
        redelivered: bool,
    }

    const FIXTURES: &[Fixture] = &[
        Fixture {
            source: "A_monitor_producer.txt:22 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.noop", "id": "4e2c2ed5-5ddb-4ed8-995e-997761e25381", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "4e2c2ed5-5ddb-4ed8-995e-997761e25381", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "4e2c2ed5-5ddb-4ed8-995e-997761e25381", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "81433c4d-0355-47bc-be5f-3501139ffb3b"}}"#,
            id: "4e2c2ed5-5ddb-4ed8-995e-997761e25381",
            task: "app.noop",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:25 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "e6cfb46d-4244-4378-914c-57ae3523184d", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "e6cfb46d-4244-4378-914c-57ae3523184d", "parent_id": null, "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "e6cfb46d-4244-4378-914c-57ae3523184d", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "740a5a25-1368-4065-b040-389cec8102f9"}}"#,
            id: "e6cfb46d-4244-4378-914c-57ae3523184d",
            task: "app.add",
            args: r#"[2, 3]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:38 LPUSH",
            key: "dataset\x06\x166",
            raw: r#"{"body": "W1s0LCA1XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "194458a4-7874-4a2d-8e0d-7f564ab0b6de", "shadow": null, "eta": "2026-11-24T09:28:05.227235+00:00", "expires": "2026-11-24T09:29:35.227235+00:00", "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "194458a4-7874-4a2d-8e0d-7f564ab0b6de", "parent_id": null, "argsrepr": "(4, 5)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "194458a4-7874-4a2d-8e0d-7f564ab0b6de", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "expiration": "120000", "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 7, "body_encoding": "base64", "delivery_tag": "b5d9c11a-a100-422d-829a-f920f1758ea2"}}"#,
            id: "194458a4-7874-4a2d-8e0d-7f564ab0b6de",
            task: "app.add",
            args: r#"[4, 5]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:28:05.227235+00:00"),
            expires: Some("2026-11-24T09:29:35.227235+00:00"),
            priority: 7,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:41 LPUSH",
            key: "dataset\x06\x163",
            raw: r#"{"body": "W1s2LCA3XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "b18a98d0-57b6-404c-a0e2-42d6447e3196", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "b18a98d0-57b6-404c-a0e2-42d6447e3196", "parent_id": null, "argsrepr": "(6, 7)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "b18a98d0-57b6-404c-a0e2-42d6447e3196", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 3, "body_encoding": "base64", "delivery_tag": "0ea3d807-2b37-4fff-87f3-fbe556e2edc0"}}"#,
            id: "b18a98d0-57b6-404c-a0e2-42d6447e3196",
            task: "app.add",
            args: r#"[6, 7]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 3,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:44 LPUSH",
            key: "dataset\x06\x169",
            raw: r#"{"body": "W1s4LCA5XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "d21a6261-9bfe-45b0-aff7-875a73ef8cd9", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "d21a6261-9bfe-45b0-aff7-875a73ef8cd9", "parent_id": null, "argsrepr": "(8, 9)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "d21a6261-9bfe-45b0-aff7-875a73ef8cd9", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 9, "body_encoding": "base64", "delivery_tag": "d4272378-371d-46ba-adf4-13e3ee54fb82"}}"#,
            id: "d21a6261-9bfe-45b0-aff7-875a73ef8cd9",
            task: "app.add",
            args: r#"[8, 9]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 9,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:47 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "64e8968c-a094-40f7-aa5a-c15135c28907", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "64e8968c-a094-40f7-aa5a-c15135c28907", "parent_id": null, "argsrepr": "[1, 2]", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "64e8968c-a094-40f7-aa5a-c15135c28907", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "d47788d5-988a-4143-a9ae-93655185b7e2"}}"#,
            id: "64e8968c-a094-40f7-aa5a-c15135c28907",
            task: "app.add",
            args: r#"[1, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:50 LPUSH",
            key: "dataset",
            raw: r#"{"body": "W1tdLCB7IngiOiAxLCAieSI6IDJ9LCB7ImNhbGxiYWNrcyI6IG51bGwsICJlcnJiYWNrcyI6IG51bGwsICJjaGFpbiI6IG51bGwsICJjaG9yZCI6IG51bGx9XQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "2c9d8224-90f7-4efa-bbfa-235fef0679fd", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "2c9d8224-90f7-4efa-bbfa-235fef0679fd", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{'x': 1, 'y': 2}", "origin": "gen13858@vm", "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "2c9d8224-90f7-4efa-bbfa-235fef0679fd", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "249d88d4-af3b-4d7d-847f-0e300641dac1"}}"#,
            id: "2c9d8224-90f7-4efa-bbfa-235fef0679fd",
            task: "app.add",
            args: r#"[]"#,
            kwargs: r#"{"x": 1, "y": 2}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:53 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogW3sidGFzayI6ICJhcHAuYWRkIiwgImFyZ3MiOiBbMTAwXSwgImt3YXJncyI6IHt9LCAib3B0aW9ucyI6IHsidGFza19pZCI6ICI3NjhkMzIxZC02ZmJhLTQxYTUtOWY0OS1mOTMyZWU3MzU3MmEiLCAicmVwbHlfdG8iOiAiMmYzM2ZmMjAtYjU5ZC0zNTRhLTkyMjMtMThhYmVlNDYzNGNjIn0sICJzdWJ0YXNrX3R5cGUiOiBudWxsLCAiaW1tdXRhYmxlIjogZmFsc2V9LCB7InRhc2siOiAiYXBwLmFkZCIsICJhcmdzIjogWzEwXSwgImt3YXJncyI6IHt9LCAib3B0aW9ucyI6IHsidGFza19pZCI6ICJiYTQ5MDhhNi03Mzg1LTQ2MjgtYjY1ZS01NTBhOTg2OTBkNDQiLCAicmVwbHlfdG8iOiAiMmYzM2ZmMjAtYjU5ZC0zNTRhLTkyMjMtMThhYmVlNDYzNGNjIn0sICJzdWJ0YXNrX3R5cGUiOiBudWxsLCAiaW1tdXRhYmxlIjogZmFsc2V9XSwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "parent_id": null, "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "91d0e044-8fa4-4dab-bbd0-f93af2f49249"}}"#,
            id: "32165bd7-b7af-496d-a3df-1497b4d17e2d",
            task: "app.add",
            args: r#"[1, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:56 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1swLCAwXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "a7fd9a87-b683-4350-a464-87619f649c1f", "shadow": null, "eta": null, "expires": null, "group": "41b8c228-b53d-4141-8a11-b801523e9397", "group_index": 0, "retries": 0, "timelimit": [null, null], "root_id": "a7fd9a87-b683-4350-a464-87619f649c1f", "parent_id": null, "argsrepr": "(0, 0)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "a7fd9a87-b683-4350-a464-87619f649c1f", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "fb2228dd-b626-4f50-9319-313b9dd81906"}}"#,
            id: "a7fd9a87-b683-4350-a464-87619f649c1f",
            task: "app.add",
            args: r#"[0, 0]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:60 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxLCAxXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "fd5c0128-9778-41a2-8fd4-03882c0ce984", "shadow": null, "eta": null, "expires": null, "group": "41b8c228-b53d-4141-8a11-b801523e9397", "group_index": 1, "retries": 0, "timelimit": [null, null], "root_id": "fd5c0128-9778-41a2-8fd4-03882c0ce984", "parent_id": null, "argsrepr": "(1, 1)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "fd5c0128-9778-41a2-8fd4-03882c0ce984", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "f28c9821-25b8-4c81-8313-68b9834775bf"}}"#,
            id: "fd5c0128-9778-41a2-8fd4-03882c0ce984",
            task: "app.add",
            args: r#"[1, 1]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:64 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1syLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "36057759-f1bf-491d-a1e6-008b69460e17", "shadow": null, "eta": null, "expires": null, "group": "41b8c228-b53d-4141-8a11-b801523e9397", "group_index": 2, "retries": 0, "timelimit": [null, null], "root_id": "36057759-f1bf-491d-a1e6-008b69460e17", "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "36057759-f1bf-491d-a1e6-008b69460e17", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "2ba23ee3-c125-439d-82dc-d9151e1c56f2"}}"#,
            id: "36057759-f1bf-491d-a1e6-008b69460e17",
            task: "app.add",
            args: r#"[2, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:69 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxLCAxXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogeyJ0YXNrIjogImFwcC50c3VtIiwgImFyZ3MiOiBbXSwgImt3YXJncyI6IHt9LCAib3B0aW9ucyI6IHsidGFza19pZCI6ICI0YTdkNDIxYS01ZmNiLTQ0NGUtOWIzZi04NmMxN2YyYzRhZmYiLCAicmVwbHlfdG8iOiAiMmYzM2ZmMjAtYjU5ZC0zNTRhLTkyMjMtMThhYmVlNDYzNGNjIiwgImdyb3VwX2lkIjogIjM1YjZmM2E5LWZkZGEtNDYwZi1iNDUzLWNjNzdjMGI1OTk3YiJ9LCAic3VidGFza190eXBlIjogbnVsbCwgImltbXV0YWJsZSI6IGZhbHNlfX1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "53bd8440-c17b-45ba-a2d5-3ae2fe5dcf3f", "shadow": null, "eta": null, "expires": null, "group": "35b6f3a9-fdda-460f-b453-cc77c0b5997b", "group_index": 0, "retries": 0, "timelimit": [null, null], "root_id": "53bd8440-c17b-45ba-a2d5-3ae2fe5dcf3f", "parent_id": null, "argsrepr": "(1, 1)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "53bd8440-c17b-45ba-a2d5-3ae2fe5dcf3f", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "a120c8ca-c53b-4555-9937-d5b7fd740f21"}}"#,
            id: "53bd8440-c17b-45ba-a2d5-3ae2fe5dcf3f",
            task: "app.add",
            args: r#"[1, 1]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:74 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1syLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogeyJ0YXNrIjogImFwcC50c3VtIiwgImFyZ3MiOiBbXSwgImt3YXJncyI6IHt9LCAib3B0aW9ucyI6IHsidGFza19pZCI6ICI0YTdkNDIxYS01ZmNiLTQ0NGUtOWIzZi04NmMxN2YyYzRhZmYiLCAicmVwbHlfdG8iOiAiMmYzM2ZmMjAtYjU5ZC0zNTRhLTkyMjMtMThhYmVlNDYzNGNjIiwgImdyb3VwX2lkIjogIjM1YjZmM2E5LWZkZGEtNDYwZi1iNDUzLWNjNzdjMGI1OTk3YiJ9LCAic3VidGFza190eXBlIjogbnVsbCwgImltbXV0YWJsZSI6IGZhbHNlfX1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "f91e009e-5b35-4303-80d0-1be257e5b008", "shadow": null, "eta": null, "expires": null, "group": "35b6f3a9-fdda-460f-b453-cc77c0b5997b", "group_index": 1, "retries": 0, "timelimit": [null, null], "root_id": "f91e009e-5b35-4303-80d0-1be257e5b008", "parent_id": null, "argsrepr": "(2, 2)", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "f91e009e-5b35-4303-80d0-1be257e5b008", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "ee6a3e0c-ab64-4814-b65b-8b8ab893ad1e"}}"#,
            id: "f91e009e-5b35-4303-80d0-1be257e5b008",
            task: "app.add",
            args: r#"[2, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:76 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.boom", "id": "869af2be-be23-4ecb-86d5-79ceba1ecad2", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "869af2be-be23-4ecb-86d5-79ceba1ecad2", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "869af2be-be23-4ecb-86d5-79ceba1ecad2", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "edbf7c99-0efa-44f6-b3f5-baef6bac0a86"}}"#,
            id: "869af2be-be23-4ecb-86d5-79ceba1ecad2",
            task: "app.boom",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "A_monitor_producer.txt:79 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.flaky", "id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "f5b93f31-db0c-4ec8-8b3d-b6db00c089f6"}}"#,
            id: "654c7608-0005-4489-8da7-2ff6e3aab4f7",
            task: "app.flaky",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "B_monitor_worker.txt:247 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1szLCAxMF0sIHt9LCB7ImNhbGxiYWNrcyI6IG51bGwsICJlcnJiYWNrcyI6IG51bGwsICJjaGFpbiI6IFt7InRhc2siOiAiYXBwLmFkZCIsICJhcmdzIjogWzEwMF0sICJrd2FyZ3MiOiB7fSwgIm9wdGlvbnMiOiB7InRhc2tfaWQiOiAiNzY4ZDMyMWQtNmZiYS00MWE1LTlmNDktZjkzMmVlNzM1NzJhIiwgInJlcGx5X3RvIjogIjJmMzNmZjIwLWI1OWQtMzU0YS05MjIzLTE4YWJlZTQ2MzRjYyJ9LCAic3VidGFza190eXBlIjogbnVsbCwgImltbXV0YWJsZSI6IGZhbHNlfV0sICJjaG9yZCI6IG51bGx9XQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "ba4908a6-7385-4628-b65e-550a98690d44", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "parent_id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "argsrepr": "(3, 10)", "kwargsrepr": "{}", "origin": "gen14293@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "ba4908a6-7385-4628-b65e-550a98690d44", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "06320304-39b3-4019-aece-3b2fc23ff835"}}"#,
            id: "ba4908a6-7385-4628-b65e-550a98690d44",
            task: "app.add",
            args: r#"[3, 10]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "B_monitor_worker.txt:347 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tbMiwgNF1dLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.tsum", "id": "4a7d421a-5fcb-444e-9b3f-86c17f2c4aff", "shadow": null, "eta": null, "expires": null, "group": "35b6f3a9-fdda-460f-b453-cc77c0b5997b", "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "f91e009e-5b35-4303-80d0-1be257e5b008", "parent_id": "f91e009e-5b35-4303-80d0-1be257e5b008", "argsrepr": "([2, 4],)", "kwargsrepr": "{}", "origin": "gen14293@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "4a7d421a-5fcb-444e-9b3f-86c17f2c4aff", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "4b3f4597-6f0c-482b-825f-6e5b63a080fa"}}"#,
            id: "4a7d421a-5fcb-444e-9b3f-86c17f2c4aff",
            task: "app.tsum",
            args: r#"[[2, 4]]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "B_monitor_worker.txt:364 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.flaky", "id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "shadow": null, "eta": "2026-11-24T09:28:09.420030+00:00", "expires": null, "group": null, "group_index": null, "retries": 1, "timelimit": [null, null], "root_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "parent_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "origin": "gen13858@vm", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "57242efe-7352-4064-9d82-73a998c8a9d3"}}"#,
            id: "654c7608-0005-4489-8da7-2ff6e3aab4f7",
            task: "app.flaky",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:28:09.420030+00:00"),
            expires: None,
            priority: 0,
            retries: 1,
            redelivered: false,
        },
        Fixture {
            source: "B_monitor_worker.txt:383 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxMywgMTAwXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogW10sICJjaG9yZCI6IG51bGx9XQ==", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "768d321d-6fba-41a5-9f49-f932ee73572a", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "32165bd7-b7af-496d-a3df-1497b4d17e2d", "parent_id": "ba4908a6-7385-4628-b65e-550a98690d44", "argsrepr": "(13, 100)", "kwargsrepr": "{}", "origin": "gen14293@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "768d321d-6fba-41a5-9f49-f932ee73572a", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "3b6939b6-eb6a-439e-8b5f-5f73fe9031db"}}"#,
            id: "768d321d-6fba-41a5-9f49-f932ee73572a",
            task: "app.add",
            args: r#"[13, 100]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "B_monitor_worker.txt:469 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.flaky", "id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "shadow": null, "eta": "2026-11-24T09:28:10.421274+00:00", "expires": null, "group": null, "group_index": null, "retries": 2, "timelimit": [null, null], "root_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "parent_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen13858@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "654c7608-0005-4489-8da7-2ff6e3aab4f7", "reply_to": "2f33ff20-b59d-354a-9223-18abee4634cc", "origin": "gen13858@vm", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "a85067e2-cf7c-45b5-b39a-b677e2a9d3ca"}}"#,
            id: "654c7608-0005-4489-8da7-2ff6e3aab4f7",
            task: "app.flaky",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:28:10.421274+00:00"),
            expires: None,
            priority: 0,
            retries: 2,
            redelivered: false,
        },
        Fixture {
            source: "C_acks_late_0/monitor.txt:22 LPUSH",
            key: "dataset",
            raw: r#"{"body": "W1sxLCAxXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "shadow": null, "eta": "2026-11-24T09:31:00.695894+00:00", "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "parent_id": null, "argsrepr": "(1, 1)", "kwargsrepr": "{}", "origin": "gen15569@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "reply_to": "9e0fce48-5808-395d-ba45-39f4f9400410", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "b51bedb2-7e75-42b5-8468-d7071059141d"}}"#,
            id: "28849cfb-7212-4d92-bcbc-1089d53cef74",
            task: "app.add",
            args: r#"[1, 1]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:31:00.695894+00:00"),
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "C_acks_late_0/monitor.txt:185 RPUSH",
            key: "dataset",
            raw: r#"{"body": "W1sxLjVdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.sleepy", "id": "71d68be7-c62c-48d4-ba7e-f5925a541b13", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "71d68be7-c62c-48d4-ba7e-f5925a541b13", "parent_id": null, "argsrepr": "(1.5,)", "kwargsrepr": "{}", "origin": "gen15569@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}, "redelivered": true}, "properties": {"correlation_id": "71d68be7-c62c-48d4-ba7e-f5925a541b13", "reply_to": "9e0fce48-5808-395d-ba45-39f4f9400410", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset", "redelivered": true}, "priority": 0, "body_encoding": "base64", "delivery_tag": "3b58ed2f-52db-4d37-a78c-68d790f09932"}}"#,
            id: "71d68be7-c62c-48d4-ba7e-f5925a541b13",
            task: "app.sleepy",
            args: r#"[1.5]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: true,
        },
        Fixture {
            source: "C_acks_late_0/monitor.txt:199 RPUSH",
            key: "dataset",
            raw: r#"{"body": "W1sxLCAxXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "shadow": null, "eta": "2026-11-24T09:31:00.695894+00:00", "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "parent_id": null, "argsrepr": "(1, 1)", "kwargsrepr": "{}", "origin": "gen15569@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}, "redelivered": true}, "properties": {"correlation_id": "28849cfb-7212-4d92-bcbc-1089d53cef74", "reply_to": "9e0fce48-5808-395d-ba45-39f4f9400410", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset", "redelivered": true}, "priority": 0, "body_encoding": "base64", "delivery_tag": "b51bedb2-7e75-42b5-8468-d7071059141d"}}"#,
            id: "28849cfb-7212-4d92-bcbc-1089d53cef74",
            task: "app.add",
            args: r#"[1, 1]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:31:00.695894+00:00"),
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: true,
        },
        Fixture {
            source: "D_ignore_result/monitor_producer.txt:19 LPUSH",
            key: "dataset",
            raw: r#"{"body": "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "cf581d61-10b9-44f2-bd54-364cfbbcb369", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "cf581d61-10b9-44f2-bd54-364cfbbcb369", "parent_id": null, "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "gen15854@vm", "ignore_result": true, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "cf581d61-10b9-44f2-bd54-364cfbbcb369", "reply_to": "64d9c078-5d05-3000-b3b3-2fce88a7d2e7", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "86029392-260f-4553-8165-0cb5b3056f2b"}}"#,
            id: "cf581d61-10b9-44f2-bd54-364cfbbcb369",
            task: "app.add",
            args: r#"[1, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "D_ignore_result/monitor_producer.txt:23 LPUSH",
            key: "dataset",
            raw: r#"{"body": "W1szLCA0XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "f09d3693-249e-4fe7-9849-e0f6b8624e07", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "f09d3693-249e-4fe7-9849-e0f6b8624e07", "parent_id": null, "argsrepr": "[3, 4]", "kwargsrepr": "{}", "origin": "gen15854@vm", "ignore_result": null, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "f09d3693-249e-4fe7-9849-e0f6b8624e07", "reply_to": "64d9c078-5d05-3000-b3b3-2fce88a7d2e7", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "c253188c-b7bb-43b9-af9d-b0f07d182f8f"}}"#,
            id: "f09d3693-249e-4fe7-9849-e0f6b8624e07",
            task: "app.add",
            args: r#"[3, 4]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "F_celery563_kombu562/monitor.txt:17 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1tdLCB7fSwgeyJjYWxsYmFja3MiOiBudWxsLCAiZXJyYmFja3MiOiBudWxsLCAiY2hhaW4iOiBudWxsLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.noop", "id": "67917434-6a1c-4e29-8023-00faf158bd42", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "67917434-6a1c-4e29-8023-00faf158bd42", "parent_id": null, "argsrepr": "()", "kwargsrepr": "{}", "origin": "gen16404@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "67917434-6a1c-4e29-8023-00faf158bd42", "reply_to": "bbb628d3-e24a-3a5d-9f90-01def8cb58f1", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "4fc4b0a1-c420-4b27-9cf0-0350afc7cdb5"}}"#,
            id: "67917434-6a1c-4e29-8023-00faf158bd42",
            task: "app.noop",
            args: r#"[]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "F_celery563_kombu562/monitor.txt:27 LPUSH",
            key: "dataset\x06\x166",
            raw: r#"{"body": "W1s0LCA1XSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "5398e885-8437-45a7-bcb7-cd191c1803cb", "shadow": null, "eta": "2026-11-24T09:31:24.232983+00:00", "expires": "2026-11-24T09:33:23.232983+00:00", "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "5398e885-8437-45a7-bcb7-cd191c1803cb", "parent_id": null, "argsrepr": "(4, 5)", "kwargsrepr": "{}", "origin": "gen16404@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "5398e885-8437-45a7-bcb7-cd191c1803cb", "reply_to": "bbb628d3-e24a-3a5d-9f90-01def8cb58f1", "delivery_mode": 2, "expiration": "120000", "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 7, "body_encoding": "base64", "delivery_tag": "0264873a-fcae-41b7-8aef-61291ef235ab"}}"#,
            id: "5398e885-8437-45a7-bcb7-cd191c1803cb",
            task: "app.add",
            args: r#"[4, 5]"#,
            kwargs: r#"{}"#,
            eta: Some("2026-11-24T09:31:24.232983+00:00"),
            expires: Some("2026-11-24T09:33:23.232983+00:00"),
            priority: 7,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "F_celery563_kombu562/monitor.txt:30 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1sxLCAyXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogW3sidGFzayI6ICJhcHAuYWRkIiwgImFyZ3MiOiBbMTBdLCAia3dhcmdzIjoge30sICJvcHRpb25zIjogeyJ0YXNrX2lkIjogIjUwNjc5OWFhLWEzMDQtNGQ1Zi1iZTMxLWFmZTJmYzNmNDY3OCIsICJyZXBseV90byI6ICJiYmI2MjhkMy1lMjRhLTNhNWQtOWY5MC0wMWRlZjhjYjU4ZjEifSwgInN1YnRhc2tfdHlwZSI6IG51bGwsICJpbW11dGFibGUiOiBmYWxzZX1dLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "65977c7e-b4b3-4809-b71c-00d2dceb901b", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "65977c7e-b4b3-4809-b71c-00d2dceb901b", "parent_id": null, "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "gen16404@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "65977c7e-b4b3-4809-b71c-00d2dceb901b", "reply_to": "bbb628d3-e24a-3a5d-9f90-01def8cb58f1", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "b4bcd3b8-9588-41f9-998b-255719782e05"}}"#,
            id: "65977c7e-b4b3-4809-b71c-00d2dceb901b",
            task: "app.add",
            args: r#"[1, 2]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "F_celery563_kombu562/monitor.txt:178 LPUSH",
            key: "celery",
            raw: r#"{"body": "W1szLCAxMF0sIHt9LCB7ImNhbGxiYWNrcyI6IG51bGwsICJlcnJiYWNrcyI6IG51bGwsICJjaGFpbiI6IFtdLCAiY2hvcmQiOiBudWxsfV0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "506799aa-a304-4d5f-be31-afe2fc3f4678", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "65977c7e-b4b3-4809-b71c-00d2dceb901b", "parent_id": "65977c7e-b4b3-4809-b71c-00d2dceb901b", "argsrepr": "(3, 10)", "kwargsrepr": "{}", "origin": "gen16426@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "506799aa-a304-4d5f-be31-afe2fc3f4678", "reply_to": "bbb628d3-e24a-3a5d-9f90-01def8cb58f1", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "6617d18b-43ae-4acb-b46d-a769eba1721f"}}"#,
            id: "506799aa-a304-4d5f-be31-afe2fc3f4678",
            task: "app.add",
            args: r#"[3, 10]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
        Fixture {
            source: "G_asyncresult_get/monitor.txt:23 LPUSH",
            key: "dataset",
            raw: r#"{"body": "W1swLCAwXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"lang": "py", "task": "app.add", "id": "4f3fb2e3-3291-44df-9406-d001a087e917", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], "root_id": "4f3fb2e3-3291-44df-9406-d001a087e917", "parent_id": null, "argsrepr": "(0, 0)", "kwargsrepr": "{}", "origin": "gen22848@vm", "ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {}}, "properties": {"correlation_id": "4f3fb2e3-3291-44df-9406-d001a087e917", "reply_to": "670bcdca-2070-3b64-8dde-98ceb31a12d5", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "dataset"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "1d364879-5c29-4255-95e1-7ddccb0c6f4d"}}"#,
            id: "4f3fb2e3-3291-44df-9406-d001a087e917",
            task: "app.add",
            args: r#"[0, 0]"#,
            kwargs: r#"{}"#,
            eta: None,
            expires: None,
            priority: 0,
            retries: 0,
            redelivered: false,
        },
    ];
}
