"""JUnit XML (junit.xml): what CI systems (GitLab, Jenkins, GitHub test reporters) show.

One <testsuite> per stage (time = the stage's duration), one <testcase> per check with
classname = <stage> or <stage>.<arch> and time = the check's duration. fail is a
<failure message="one-line summary" type="rule">, error an <error>, skip a <skipped
message=...>; JUnit has no warning, so warn is a passing test case whose <system-out> starts
"WARNING: <summary>". Every test case's <system-out> names its log (relative to the report
directory when it is under it) and how to reproduce it. A stage without checks is one
test case of its own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kseries.export import ExportSettings
from kseries.export.common import Item, Json, items, one_line, relative_log, stages, status_of

FILE_NAME = "junit.xml"
OUTCOME_TAG = {"fail": "failure", "error": "error", "skip": "skipped"}


def seconds(value: object) -> str:
    return f"{float(value):.3f}" if isinstance(value, int | float) else "0.000"


def system_out(item: Item, settings: ExportSettings) -> str:
    lines = [f"WARNING: {item.summary}"] if item.status == "warn" else []
    log = relative_log(settings, item.check.get("log"))
    if log:
        lines.append(f"log: {log}")
    if item.check.get("reproducer"):
        lines.append(f"reproduce: {item.check['reproducer']}")
    return "\n".join(lines)


def testcase(parent: ET.Element, item: Item, settings: ExportSettings) -> None:
    classname = f"{item.stage}.{item.arch}" if item.arch else item.stage
    case = ET.SubElement(parent, "testcase", name=item.name, classname=classname,
                         time=seconds(item.check.get("duration_s")))
    tag = OUTCOME_TAG.get(item.status)
    if tag is not None:
        outcome = ET.SubElement(case, tag, message=one_line(item.summary, 1000))
        if tag != "skipped":
            outcome.set("type", item.rule or item.status)
            outcome.text = item.summary
    text = system_out(item, settings)
    if text:
        ET.SubElement(case, "system-out").text = text


def testsuite(parent: ET.Element, entry: Json, started: str,
              settings: ExportSettings) -> Counter[str]:
    found = items(entry)
    counts = Counter(i.status for i in found)
    suite = ET.SubElement(parent, "testsuite", name=str(entry.get("name")),
                          tests=str(len(found)), failures=str(counts["fail"]),
                          errors=str(counts["error"]), skipped=str(counts["skip"]),
                          time=seconds(entry.get("duration_s")), timestamp=started)
    properties = ET.SubElement(suite, "properties")
    for key, value in (("status", status_of(entry)), ("summary", entry.get("summary")),
                       ("reproducer", entry.get("reproducer"))):
        if value:
            ET.SubElement(properties, "property", name=key, value=str(value))
    for item in found:
        testcase(suite, item, settings)
    return counts


def document(report: Json, settings: ExportSettings) -> ET.ElementTree[ET.Element]:
    started = str(report.get("started") or "").removesuffix("Z")
    root = ET.Element("testsuites", name=f"kseries {report.get('series')} "
                      f"{report.get('revision')}")
    total: Counter[str] = Counter()
    time = 0.0
    for entry in stages(report):
        counts = testsuite(root, entry, started, settings)
        total.update(counts)
        duration = entry.get("duration_s")
        time += float(duration) if isinstance(duration, int | float) else 0.0
    root.set("tests", str(sum(total.values())))
    root.set("failures", str(total["fail"]))
    root.set("errors", str(total["error"]))
    root.set("skipped", str(total["skip"]))
    root.set("time", f"{time:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE_NAME
    text = ET.tostring(document(report, settings).getroot(), encoding="unicode")
    path.write_text(f"<?xml version='1.0' encoding='utf-8'?>\n{text}\n", encoding="utf-8")
    return [path]
