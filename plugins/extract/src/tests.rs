//! Tests of `extract.text` through argument binding, as the worker calls it: every format,
//! the strict `document` contract, rejects for broken input, zip bombs, the example corpus,
//! and property tests that no input makes the component panic.

use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use taskbox_sdk::json;
use taskbox_sdk::testing::call;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::*;

fn extract_doc(doc: Value) -> Result<Value, TaskError> {
    call(TASKBOX_TASKS, "extract.text", json!([doc]), json!({}))
}

fn ok(doc: Value) -> Value {
    match extract_doc(doc) {
        Ok(out) => out,
        Err(err) => panic!("extract.text failed: {err}"),
    }
}

fn rejected(doc: Value) -> String {
    match extract_doc(doc) {
        Err(TaskError::Reject(message)) => message,
        other => panic!("expected a reject, got {other:?}"),
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A zip archive with the given entries, deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A minimal DOCX: the parts Word needs, one heading, prose and a table.
fn docx(core_title: Option<&str>) -> Vec<u8> {
    let document = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Backlog runbook</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">When the queue grows, </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>drain it</w:t></w:r><w:r><w:t>.</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Queue</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Limit</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>pipeline</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>500</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:t>Done &amp; dusted.</w:t></w:r></w:p>
</w:body></w:document>"#;
    let content_types = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#;
    let mut entries: Vec<(&str, Vec<u8>)> = vec![
        ("[Content_Types].xml", content_types.as_bytes().to_vec()),
        ("word/document.xml", document.as_bytes().to_vec()),
    ];
    if let Some(title) = core_title {
        let core = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></cp:coreProperties>"#
        );
        entries.push(("docProps/core.xml", core.into_bytes()));
    }
    let borrowed: Vec<(&str, &[u8])> = entries.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    zip_of(&borrowed)
}

#[test]
fn plain_string_is_text() {
    let out = ok(json!("  Hello\r\nworld  \n\n\n\n\nend \n"));
    assert_eq!(out["text"], "  Hello\nworld\n\n\nend");
    assert_eq!(
        out["metadata"],
        json!({"title": null, "characters": 19, "type": "text", "mime_type": "text/plain",
               "source": null, "id": null})
    );
}

#[test]
fn output_has_exactly_text_and_metadata_and_feeds_chunking() {
    let out = ok(json!({"text": "# Title\n\nBody text.", "filename": "a.md", "id": 7}));
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["metadata", "text"]);
    assert_eq!(out["metadata"]["id"], 7);
    assert_eq!(out["metadata"]["source"], "a.md");
    // The extract → chunking link of a chain: chunking reads this as its document.
    let doc: taskbox_plugin_chunking::Document = serde_json::from_value(out.clone()).unwrap();
    assert!(matches!(
        doc,
        taskbox_plugin_chunking::Document::Extracted { .. }
    ));
    let chunks = call(
        taskbox_plugin_chunking::TASKBOX_TASKS,
        "chunking.split",
        json!([out]),
        json!({}),
    )
    .unwrap();
    assert_eq!(chunks["document"]["title"], "Title");
    assert_eq!(chunks["document"]["type"], "markdown");
}

#[test]
fn markdown_by_filename() {
    let src = "Intro line.\n\n# Queue *Design*\n\nUse [links](http://x.invalid) and **bold**.\n\n\
               ```\nlet x = 1;\n```\n";
    let out = ok(json!({"text": src, "filename": "notes/design.MD"}));
    assert_eq!(out["metadata"]["type"], "markdown");
    assert_eq!(out["metadata"]["mime_type"], "text/markdown");
    assert_eq!(out["metadata"]["title"], "Queue Design");
    assert_eq!(
        out["text"],
        "Intro line.\n\nQueue Design\n\nUse links and bold.\n\nlet x = 1;"
    );
}

#[test]
fn html_drops_scripts_and_styles() {
    let src = "<!DOCTYPE html><html><head><title>Ops &mdash; Guide</title>\
               <style>.secret-style { color: red }</style></head><body>\
               <script>console.log('secret-script')</script>\
               <h1>Heading</h1><p>One &amp; two.</p><p>Three</p></body></html>";
    let out = ok(json!({"content_base64": b64(src.as_bytes())}));
    assert_eq!(out["metadata"]["type"], "html", "sniffed from the doctype");
    assert_eq!(out["metadata"]["title"], "Ops — Guide");
    let text = out["text"].as_str().unwrap();
    assert_eq!(text, "Heading\n\nOne & two.\n\nThree");
    assert!(!text.contains("secret"));
    assert_eq!(out["metadata"]["characters"], text.chars().count());
}

#[test]
fn csv_rows_are_readable_lines() {
    let src = "host,queue,notes\nw1,pipeline,\"drains fast,\nrarely stalls\"\nw2,mail,\n";
    let out = ok(json!({"text": src, "mime_type": "text/csv; charset=utf-8"}));
    assert_eq!(out["metadata"]["type"], "csv");
    assert_eq!(out["metadata"]["mime_type"], "text/csv");
    assert_eq!(out["metadata"]["title"], Value::Null);
    assert_eq!(
        out["text"],
        "host: w1; queue: pipeline; notes: drains fast, rarely stalls\nhost: w2; queue: mail"
    );
}

#[test]
fn json_is_sniffed_and_flattened() {
    let src = r#"{"title": "Catalogue", "tasks": [{"name": "extract.text", "queue": "pipeline"}]}"#;
    let out = ok(json!({"content_base64": b64(src.as_bytes()), "id": "doc-1"}));
    assert_eq!(out["metadata"]["type"], "json");
    assert_eq!(out["metadata"]["title"], "Catalogue");
    assert_eq!(out["metadata"]["id"], "doc-1");
    assert_eq!(
        out["text"],
        "title: Catalogue\n\ntasks[0].name: extract.text\ntasks[0].queue: pipeline"
    );
}

#[test]
fn docx_title_from_core_properties_else_heading() {
    let out =
        ok(json!({"content_base64": b64(&docx(Some("Core &amp; Title"))), "filename": "r.docx"}));
    assert_eq!(out["metadata"]["type"], "docx");
    assert_eq!(
        out["metadata"]["mime_type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert_eq!(out["metadata"]["title"], "Core & Title");
    assert_eq!(
        out["text"],
        "Backlog runbook\n\nWhen the queue grows, drain it.\n\nQueue | Limit\npipeline | 500\n\n\
         Done & dusted."
    );
    // No core properties: the first heading is the title; and the type is sniffed.
    let out = ok(json!({"content_base64": b64(&docx(None))}));
    assert_eq!(out["metadata"]["type"], "docx");
    assert_eq!(out["metadata"]["title"], "Backlog runbook");
}

#[test]
fn pdf_is_rejected_naming_the_format() {
    let message = rejected(json!({"content_base64": b64(b"%PDF-1.7\n%\xE2\xE3\n1 0 obj\n")}));
    assert!(
        message.starts_with("PDF extraction is not supported by this build"),
        "{message}"
    );
    let message = rejected(json!({"text": "x", "mime_type": "application/pdf"}));
    assert!(
        message.contains("PDF extraction is not supported"),
        "{message}"
    );
}

#[test]
fn document_contract_is_strict() {
    let message = rejected(json!({"text": "x", "colour": "red"}));
    assert!(message.contains("unknown key 'colour'"), "{message}");
    let message = rejected(json!({"filename": "a.txt"}));
    assert!(
        message.contains("exactly one of text") && message.contains("has none"),
        "{message}"
    );
    let message = rejected(json!({"text": "x", "content_base64": "eA=="}));
    assert!(message.contains("more than one"), "{message}");
    let message = rejected(json!({"text": 5}));
    assert!(
        message.contains("document.text must be a string"),
        "{message}"
    );
    let message = rejected(json!({"text": "x", "id": [1]}));
    assert!(message.contains("document.id"), "{message}");
    let message = rejected(json!(42));
    assert!(message.contains("document must be a string"), "{message}");
    // The binding itself: a missing argument names the parameter.
    let err = call(TASKBOX_TASKS, "extract.text", json!([]), json!({})).unwrap_err();
    assert!(matches!(err, TaskError::Reject(m) if m.contains("document")));
    // Null means absent, as Python's None would.
    let out = ok(json!({"text": "x", "path": null, "mime_type": null}));
    assert_eq!(out["text"], "x");
}

#[test]
fn broken_inputs_reject_naming_the_problem() {
    let message = rejected(json!({"content_base64": "not base64!"}));
    assert!(message.contains("not valid base64"), "{message}");
    let message = rejected(json!({"content_base64": b64(b"caf\xE9 latin-1")}));
    assert!(
        message.contains("not valid UTF-8") && message.contains("offset 3"),
        "{message}"
    );
    let message = rejected(json!({"text": "x", "mime_type": "image/png"}));
    assert!(
        message.contains("'image/png'") && message.contains("not a supported"),
        "{message}"
    );
    let message =
        rejected(json!({"content_base64": b64(b"PK\x03\x04garbage"), "filename": "a.docx"}));
    assert!(message.contains("zip archive is broken"), "{message}");
    let message = rejected(json!({"content_base64": b64(&zip_of(&[("a.txt", b"hi")]))}));
    assert!(message.contains("not a DOCX"), "{message}");
    let bad_xml = zip_of(&[("word/document.xml", b"<w:document><w:p></w:document>")]);
    let message = rejected(json!({"content_base64": b64(&bad_xml)}));
    assert!(
        message.contains("word/document.xml") && message.contains("not well-formed"),
        "{message}"
    );
    let message = rejected(json!({"text": "{\"a\": ", "filename": "x.json"}));
    assert!(message.contains("not valid JSON"), "{message}");
    // Base64 with MIME line breaks and no padding is still fine.
    let out = ok(json!({"content_base64": "aGVs\nbG8"}));
    assert_eq!(out["text"], "hello");
}

#[test]
fn zip_bomb_is_rejected() {
    // 40 MiB of zeros deflates to ~40 KiB; the inflate budget is 32 MiB.
    let zeros = vec![b'0'; 40 * 1024 * 1024];
    let bomb = zip_of(&[("word/document.xml", &zeros)]);
    assert!(bomb.len() < 1024 * 1024);
    let message = rejected(json!({"content_base64": b64(&bomb), "filename": "bomb.docx"}));
    assert!(message.contains("zip bomb"), "{message}");

    // The same bomb declaring 100 bytes in both headers: the inflated stream is cut off.
    let mut liar = bomb;
    liar[22..26].copy_from_slice(&100u32.to_le_bytes());
    let central = liar
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central directory entry");
    liar[central + 24..central + 28].copy_from_slice(&100u32.to_le_bytes());
    let message = rejected(json!({"content_base64": b64(&liar), "filename": "liar.docx"}));
    assert!(message.contains("word/document.xml"), "{message}");
}

#[test]
fn path_reads_a_file_and_missing_paths_reject() {
    let dir = std::env::temp_dir().join(format!("taskbox-extract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("page.html");
    std::fs::write(&file, "<title>From disk</title><p>On disk.</p>").unwrap();
    let path = file.to_str().unwrap();
    let out = ok(json!({"path": path}));
    assert_eq!(
        out["metadata"]["type"], "html",
        "detected from the path's extension"
    );
    assert_eq!(out["metadata"]["title"], "From disk");
    assert_eq!(out["metadata"]["source"], path);
    // A sparse file just over the cap: rejected without reading it all.
    let big = dir.join("big.txt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_INPUT_BYTES + 1)
        .unwrap();
    let message = rejected(json!({"path": big.to_str().unwrap()}));
    assert!(message.contains("larger than 32 MiB"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
    let message = rejected(json!({"path": "/nonexistent/taskbox/doc.txt"}));
    assert!(
        message.contains("'/nonexistent/taskbox/doc.txt' cannot be read")
            && message.contains("granted"),
        "{message}"
    );
}

/// Every file of the demo corpus extracts to non-empty text of the expected type.
#[test]
fn example_corpus_extracts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/documents");
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let expected = match name.rsplit('.').next() {
            Some("md") => "markdown",
            Some("html") => "html",
            Some("csv") => "csv",
            Some("json") => "json",
            Some("docx") => "docx",
            _ => "text",
        };
        let bytes = std::fs::read(entry.path()).unwrap();
        let out = ok(json!({"content_base64": b64(&bytes), "filename": name}));
        assert_eq!(out["metadata"]["type"], expected, "{name}");
        let text = out["text"].as_str().unwrap();
        assert!(text.split_whitespace().count() > 20, "{name}: {text:?}");
        if expected != "csv" && expected != "text" {
            assert!(out["metadata"]["title"].is_string(), "{name} has no title");
        }
        seen += 1;
    }
    assert!(
        seen >= 8,
        "expected the example corpus in {}",
        dir.display()
    );
}

/// The corpus's rare words each find exactly one document, which the demo's search relies on.
#[test]
fn example_corpus_rare_words_are_distinctive() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/documents");
    let mut texts = Vec::new();
    for name in [
        "queue-routing.html",
        "wasm-capabilities.html",
        "worker-fleet.csv",
        "task-catalogue.json",
        "backlog-runbook.docx",
        "fuel-budgets.docx",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let out = ok(json!({"content_base64": b64(&bytes), "filename": name}));
        texts.push((name, out["text"].as_str().unwrap().to_lowercase()));
    }
    for (word, home) in [
        ("oubliette", "queue-routing.html"),
        ("portcullis", "wasm-capabilities.html"),
        ("bellwether", "worker-fleet.csv"),
        ("quincunx", "task-catalogue.json"),
        ("gnomon", "backlog-runbook.docx"),
        ("astrolabe", "fuel-budgets.docx"),
    ] {
        let found: Vec<&str> = texts
            .iter()
            .filter(|(_, t)| t.contains(word))
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(found, [home], "{word}");
    }
}

/// Type hints that steer arbitrary bytes into each extractor.
const HINTS: &[Option<&str>] = &[
    None,
    Some("x.txt"),
    Some("x.md"),
    Some("x.html"),
    Some("x.csv"),
    Some("x.tsv"),
    Some("x.json"),
    Some("x.docx"),
    Some("x.pdf"),
];

fn run_bytes(bytes: &[u8], hint: Option<&str>) {
    let doc = match hint {
        Some(filename) => json!({"content_base64": b64(bytes), "filename": filename}),
        None => json!({"content_base64": b64(bytes)}),
    };
    match extract_doc(doc) {
        Ok(out) => {
            let text = out["text"].as_str().unwrap_or_default();
            assert_eq!(out["metadata"]["characters"], text.chars().count());
            assert!(!text.starts_with('\n') && !text.ends_with('\n'));
            assert!(!text.contains("\n\n\n\n"));
        }
        Err(err) => assert!(matches!(err, TaskError::Reject(_)), "{err}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes, under every type hint, give a result or a reject: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   hint in proptest::sample::select(HINTS)) {
        run_bytes(&bytes, hint);
    }

    /// Markup-ish text reaches deep into the text parsers.
    #[test]
    fn markup_like_text_never_panics(src in "[<>/a-z&;#\"'=|,\\[\\]{}:* \n\t-]{0,400}",
                                     hint in proptest::sample::select(HINTS)) {
        run_bytes(src.as_bytes(), hint);
    }

    /// Arbitrary XML-ish content as word/document.xml exercises the DOCX walker.
    #[test]
    fn arbitrary_docx_body_never_panics(body in "(<w:[ptr]>|</w:[ptr]>|<w:tbl>|</w:tbl>|<w:tc>|</w:tc>|<w:br/>|&amp;|&#x4[0-9];|[a-z ]){0,60}") {
        let zip = zip_of(&[("word/document.xml", body.as_bytes())]);
        run_bytes(&zip, None);
    }

    /// A valid DOCX with bytes flipped: broken zips and inflate errors are rejects.
    #[test]
    fn corrupted_docx_never_panics(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = docx(Some("t"));
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        run_bytes(&bytes, Some("x.docx"));
    }
}
