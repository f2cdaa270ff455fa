#!/usr/bin/env python3
"""Writes the example DOCX documents next to this script.

Standard library only: each file is a zip of hand-written minimal WordprocessingML
([Content_Types].xml, _rels/.rels, word/document.xml, word/styles.xml and
docProps/core.xml with a dc:title). Entries get a fixed timestamp, so running the script
again reproduces the same bytes and the committed .docx files only change when the text does.

Usage: python3 examples/documents/make-docx.py
"""

import os
import zipfile
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_TIME = (2025, 1, 1, 0, 0, 0)

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"

CONTENT_TYPES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="{DOCX_MAIN}"/>
<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>
</Types>
"""

PACKAGE_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{R}/officeDocument" Target="word/document.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>
</Relationships>
"""

DOCUMENT_RELS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="{R}/styles" Target="styles.xml"/>
</Relationships>
"""


def style(style_id, name, size, bold=True):
    weight = "<w:b/>" if bold else ""
    return (
        f'<w:style w:type="paragraph" w:styleId="{style_id}"><w:name w:val="{name}"/>'
        f'<w:basedOn w:val="Normal"/><w:next w:val="Normal"/><w:qFormat/>'
        f'<w:pPr><w:keepNext/><w:spacing w:before="240" w:after="120"/></w:pPr>'
        f'<w:rPr>{weight}<w:sz w:val="{size}"/></w:rPr></w:style>'
    )


STYLES = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:styles xmlns:w="{W}">'
    '<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/>'
    '<w:pPr><w:spacing w:after="120"/></w:pPr><w:rPr><w:sz w:val="22"/></w:rPr></w:style>'
    + style("Title", "Title", 48)
    + style("Heading1", "heading 1", 32)
    + style("Heading2", "heading 2", 26)
    + "</w:styles>\n"
)


def core(title, creator):
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<dc:title>{escape(title)}</dc:title>
<dc:creator>{escape(creator)}</dc:creator>
<dcterms:created xsi:type="dcterms:W3CDTF">2025-01-01T00:00:00Z</dcterms:created>
</cp:coreProperties>
"""


def run(text):
    return f'<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def paragraph(text, style_id=None):
    props = f'<w:pPr><w:pStyle w:val="{style_id}"/></w:pPr>' if style_id else ""
    return f"<w:p>{props}{run(text)}</w:p>"


def table(rows):
    out = ['<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="0" w:type="auto"/></w:tblPr>']
    for row in rows:
        cells = "".join(f"<w:tc>{paragraph(cell)}</w:tc>" for cell in row)
        out.append(f"<w:tr>{cells}</w:tr>")
    out.append("</w:tbl>")
    return "".join(out)


def document(blocks):
    """blocks: (kind, value) with kind one of Title, Heading1, Heading2, p, table."""
    body = []
    for kind, value in blocks:
        if kind == "table":
            body.append(table(value))
        elif kind == "p":
            body.append(paragraph(value))
        else:
            body.append(paragraph(value, kind))
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:document xmlns:w="{W}" xmlns:r="{R}"><w:body>{"".join(body)}'
        '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>\n'
    )


def write_docx(filename, title, creator, blocks):
    parts = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", PACKAGE_RELS),
        ("word/document.xml", document(blocks)),
        ("word/_rels/document.xml.rels", DOCUMENT_RELS),
        ("word/styles.xml", STYLES),
        ("docProps/core.xml", core(title, creator)),
    ]
    path = os.path.join(HERE, filename)
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in parts:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))
    print(f"wrote {path}")


RUNBOOK = [
    ("Title", "Runbook: Draining a Queue Backlog"),
    ("p", "This runbook is for the engineer on call when a queue-depth alert fires. It assumes "
          "nothing is on fire yet: workers are up, the broker answers, and messages are simply "
          "arriving faster than they leave. Read it top to bottom the first time; afterwards the "
          "checklist at the end is enough."),
    ("Heading1", "First five minutes"),
    ("p", "Open the queue dashboard and find the queue that alerted. Note its depth, the age of "
          "its oldest message and the number of workers consuming it. The age matters more than "
          "the depth: ten thousand messages that are each a second old are a burst, while fifty "
          "messages that are an hour old are a stall."),
    ("p", "We call the oldest-message age the gnomon of the queue, after the part of a sundial "
          "that casts the shadow: it tells you what time the queue thinks it is. When the gnomon "
          "keeps growing while depth stays flat, workers are stuck, not slow."),
    ("Heading1", "Burst or stall"),
    ("Heading2", "A burst"),
    ("p", "A producer sent a large batch, for example a nightly import. Check that the dead-letter "
          "queue is quiet and that task durations look normal. If both are true, the backlog will "
          "drain on its own; post an estimate in the incident channel and keep watching."),
    ("Heading2", "A stall"),
    ("p", "Workers hold messages but do not finish them. Look for tasks hitting their timeout or "
          "their fuel budget in the worker log. A task that runs out of fuel on every attempt is "
          "a bug or a hostile input, and retrying it only burns the budget again: move it to the "
          "dead-letter queue and file an issue with the task id."),
    ("Heading1", "Thresholds"),
    ("table", [
        ["Queue", "Alert depth", "Alert age", "First action"],
        ["pipeline", "5000", "10 minutes", "add pipeline workers"],
        ["mail", "500", "2 minutes", "check the SMTP relay"],
        ["dataset", "2000", "15 minutes", "check kv storage latency"],
        ["retention", "none", "24 hours", "none until morning"],
    ]),
    ("Heading1", "Checklist"),
    ("p", "1. Find the alerting queue and read depth, age and consumer count."),
    ("p", "2. Decide burst or stall from the age trend, not the depth."),
    ("p", "3. For a stall, read the worker log for timeouts and fuel exhaustion."),
    ("p", "4. Scale workers only after the cause is known; more workers feed a bug faster."),
    ("p", "5. Write a two-line summary in the incident channel before going back to sleep."),
]

FUEL = [
    ("Title", "Choosing Fuel Budgets"),
    ("p", "Every task in the sandbox runs with a fuel budget: a count of instructions it may "
          "execute before the runtime stops it. Fuel is deterministic, which makes it the right "
          "tool for bounding CPU. The same input burns the same fuel on a laptop and on a busy "
          "production host, so a budget chosen in testing holds in production."),
    ("Heading1", "Measure before you limit"),
    ("p", "Run the task over a realistic sample of inputs with fuel accounting on and record what "
          "each call consumed. Sort the numbers and look at the tail, not the mean. A good budget "
          "sits comfortably above the largest legitimate input you expect, typically four to ten "
          "times the ninety-ninth percentile."),
    ("p", "Think of the measurement as an astrolabe for the workload: it will not steer the ship, "
          "but it tells you where you are with enough precision to plot the next leg. Without it, "
          "budgets are guesses, and guessed budgets are either so loose that they protect nothing "
          "or so tight that they reject honest work."),
    ("Heading1", "What happens at the limit"),
    ("p", "When a task exhausts its fuel the worker records an out-of-fuel error, frees the "
          "instance and moves on. The error is not retried by default, because the same input "
          "would burn the same fuel again. Operators who expect occasional large inputs can route "
          "them to a separate task type with a larger budget instead of raising the limit for "
          "everyone."),
    ("Heading1", "Rules of thumb"),
    ("table", [
        ["Workload", "What to measure", "Budget"],
        ["short interactive tasks", "the 99th percentile of a day of calls", "ten times that"],
        ["document pipeline", "the largest document in the sample", "four times that"],
        ["a deliberate infinite loop", "nothing: it never finishes", "stopped at the budget"],
    ]),
    ("p", "Revisit budgets after every change to a task's code or to the shape of its inputs. "
          "A budget is a promise about the workload, and workloads drift."),
]


if __name__ == "__main__":
    write_docx("backlog-runbook.docx", "Runbook: Draining a Queue Backlog", "Platform team", RUNBOOK)
    write_docx("fuel-budgets.docx", "Choosing Fuel Budgets", "Platform team", FUEL)
