//! The `**values` of a `mail.send` call: checked against what the template takes, converted to
//! text, and cleaned so that no value can break a header or forge extra lines in the mail.
//!
//! Policy: a value the template does not take is a reject (listing what it does take), like an
//! unexpected keyword argument in Python. A misspelt optional value would otherwise vanish
//! silently and the mail would go out without it.

use std::collections::BTreeMap;

use taskbox_sdk::{Kwargs, Value};

use crate::render::single_line;

/// Optional on every template: the product name shown in the copy (Dify's branding setting).
pub const APPLICATION_TITLE: &str = "application_title";

/// What one template takes.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Values that must be present and non-empty.
    pub required: &'static [&'static str],
    /// At least one of these must be present (empty when the template has no such group).
    pub one_of: &'static [&'static str],
    /// Optional values beyond [`APPLICATION_TITLE`].
    pub optional: &'static [&'static str],
    /// Which of the above are lists (a single string is taken as a list of one).
    pub lists: &'static [&'static str],
}

impl Spec {
    fn accepts(&self, name: &str) -> bool {
        name == APPLICATION_TITLE
            || self.required.contains(&name)
            || self.one_of.contains(&name)
            || self.optional.contains(&name)
    }

    /// Every value name the template takes, for error messages.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .required
            .iter()
            .chain(self.one_of)
            .chain(self.optional)
            .copied()
            .collect();
        names.push(APPLICATION_TITLE);
        names
    }
}

/// The checked values: only the present, non-empty ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    text: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
}

impl Values {
    /// A single-line value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.text.get(name).map(String::as_str)
    }

    /// A list value (each item single-line), if given with at least one item.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        self.lists.get(name).map(Vec::as_slice)
    }
}

/// Checks the call's `values` for template `template` described by `spec`.
///
/// # Errors
/// A message for the caller naming the offending value: not taken by the template, of the
/// wrong type, missing, or a `url` that is not an `http(s)` link.
pub fn parse(template: &str, spec: &Spec, raw: Kwargs) -> Result<Values, String> {
    let mut unknown: Vec<&str> = raw
        .keys()
        .map(String::as_str)
        .filter(|k| !spec.accepts(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(format!(
            "template '{template}' does not take {} {} (it takes: {})",
            plural(unknown.len(), "the value", "the values"),
            quote_list(&unknown, "and"),
            spec.names().join(", ")
        ));
    }

    let mut values = Values::default();
    for (name, value) in raw {
        if spec.lists.contains(&name.as_str()) {
            let items = list_items(&name, value)?;
            if !items.is_empty() {
                values.lists.insert(name, items);
            }
        } else if let Some(text) = scalar(&name, &value)? {
            values.text.insert(name, text);
        }
    }

    let present = |name: &str| values.get(name).is_some() || values.list(name).is_some();
    let missing: Vec<&str> = spec
        .required
        .iter()
        .copied()
        .filter(|n| !present(n))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing required {} {} for template '{template}'",
            plural(missing.len(), "value", "values"),
            quote_list(&missing, "and")
        ));
    }
    if !spec.one_of.is_empty() && !spec.one_of.iter().any(|n| present(n)) {
        return Err(format!(
            "template '{template}' needs at least one of the values {}",
            quote_list(spec.one_of, "or")
        ));
    }
    if let Some(url) = values.get("url")
        && !is_web_url(url)
    {
        return Err(format!(
            "value 'url' must be an http:// or https:// link, got '{url}'"
        ));
    }
    Ok(values)
}

/// A scalar value as one clean line; `None` for null or blank.
fn scalar(name: &str, value: &Value) -> Result<Option<String>, String> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => single_line(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => {
            return Err(format!(
                "value '{name}' must be a string or a number, got {}",
                kind(value)
            ));
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

/// A list value's items, each one clean line, blanks dropped.
fn list_items(name: &str, value: Value) -> Result<Vec<String>, String> {
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => vec![other],
        other @ Value::Object(_) => {
            return Err(format!(
                "value '{name}' must be a list of strings, got {}",
                kind(&other)
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        match item {
            Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "value '{name}' must be a list of strings, but an item is {}",
                    kind(item)
                ));
            }
            _ => out.extend(scalar(name, item)?),
        }
    }
    Ok(out)
}

/// Whether `url` is an absolute `http`/`https` URL (no `javascript:` or `data:` links in a
/// button, whatever the caller sends).
fn is_web_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["https://", "http://"].iter().any(|scheme| {
        lower
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
    }) && !url.contains(char::is_whitespace)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn quote_list(names: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {conjunction} {last}", rest.join(", "))
        }
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use taskbox_sdk::json;

    use super::*;

    const SPEC: Spec = Spec {
        required: &["user_name", "url"],
        one_of: &["dataset_names", "documents"],
        optional: &[],
        lists: &["dataset_names", "documents"],
    };

    fn kwargs(v: Value) -> Kwargs {
        match v {
            Value::Object(map) => map,
            _ => panic!("kwargs must be an object"),
        }
    }

    #[test]
    fn values_are_cleaned_and_lists_accept_a_single_string() {
        let values = parse(
            "t",
            &SPEC,
            kwargs(json!({
                "user_name": " Ada\r\n Lovelace ",
                "url": "https://x.test/datasets",
                "dataset_names": "Docs",
                "documents": ["a.pdf", "", 7, null],
            })),
        )
        .unwrap();
        assert_eq!(values.get("user_name"), Some("Ada Lovelace"));
        assert_eq!(
            values.list("dataset_names"),
            Some(&["Docs".to_string()][..])
        );
        assert_eq!(
            values.list("documents"),
            Some(&["a.pdf".to_string(), "7".to_string()][..])
        );
    }

    #[test]
    fn unknown_missing_and_mistyped_values_are_named() {
        let err = parse("t", &SPEC, kwargs(json!({"usr": 1, "url2": 2}))).unwrap_err();
        assert!(err.contains("the values 'url2' and 'usr'"), "{err}");
        assert!(err.contains("it takes: user_name, url"), "{err}");

        let err = parse(
            "t",
            &SPEC,
            kwargs(json!({"user_name": "  ", "documents": ["x"]})),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "missing required values 'user_name' and 'url' for template 't'"
        );

        let err = parse(
            "t",
            &SPEC,
            kwargs(json!({"user_name": "A", "url": "https://x.test", "documents": []})),
        )
        .unwrap_err();
        assert!(err.contains("at least one of the values 'dataset_names' or 'documents'"));

        let err = parse("t", &SPEC, kwargs(json!({"user_name": {"a": 1}}))).unwrap_err();
        assert!(err.contains("'user_name' must be a string or a number, got an object"));
    }

    #[test]
    fn only_web_urls_become_links() {
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "https://",
            "https:///x",
            "//x.test",
        ] {
            let err = parse(
                "t",
                &SPEC,
                kwargs(json!({"user_name": "A", "url": bad, "documents": ["d"]})),
            )
            .unwrap_err();
            assert!(err.contains("http:// or https://"), "{bad}: {err}");
        }
        assert!(is_web_url("HTTPS://X.test/a?b=c"));
    }
}
