//! CSV and TSV to text. Each data row becomes one line of `header: value` pairs joined by
//! `; ` (`name: Ada; role: engineer`): a row then reads as a sentence-like record that still
//! makes sense once chunking has cut it away from the header line. Empty values are left out,
//! whitespace inside a value (embedded newlines included) collapses to one space so a row
//! never spans lines, and a field without a header is named `column N`. The `csv` crate does
//! the quoting rules (RFC 4180 plus common leniencies).

use crate::text::{MAX_TEXT_BYTES, normalize, too_much_text};

/// Extracts the text of delimited data whose first row is the header.
pub fn extract(src: &str, delimiter: u8) -> Result<String, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(src.as_bytes());
    let mut headers: Option<Vec<String>> = None;
    let mut out = String::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => {
                let line = err.position().map_or(0, csv::Position::line);
                return Err(format!(
                    "the CSV content is malformed near line {line}: {err}"
                ));
            }
        }
        let values: Vec<String> = record.iter().map(collapse).collect();
        if values.iter().all(String::is_empty) {
            continue;
        }
        let Some(names) = headers.as_ref() else {
            headers = Some(values);
            continue;
        };
        let mut first = true;
        for (i, value) in values.iter().enumerate() {
            if value.is_empty() {
                continue;
            }
            if !first {
                out.push_str("; ");
            }
            first = false;
            match names.get(i).filter(|n| !n.is_empty()) {
                Some(name) => out.push_str(name),
                None => out.push_str(&format!("column {}", i + 1)),
            }
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('\n');
        if out.len() > MAX_TEXT_BYTES {
            return Err(too_much_text());
        }
    }
    if out.is_empty() {
        // A header without rows still says what the table is about.
        if let Some(names) = headers {
            out = names
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    Ok(normalize(&out))
}

fn collapse(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_header_value_lines() {
        let src = "name,role,notes\r\nAda,engineer,\"wrote \"\"notes\"\"\non two lines\"\n\n\
                   Grace,,admiral,extra\n";
        assert_eq!(
            extract(src, b',').unwrap(),
            "name: Ada; role: engineer; notes: wrote \"notes\" on two lines\n\
             name: Grace; notes: admiral; column 4: extra"
        );
    }

    #[test]
    fn tabs_and_header_only() {
        assert_eq!(extract("a\tb\n1\t2\n", b'\t').unwrap(), "a: 1; b: 2");
        assert_eq!(extract("only,headers\n", b',').unwrap(), "only; headers");
        assert_eq!(extract("", b',').unwrap(), "");
    }
}
