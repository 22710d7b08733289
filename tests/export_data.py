"""The reports the exporter tests read: the golden report and the rich one, laid out on disk.

tests/fixtures/report-rich.json is a verify run as the stages write it (absolute paths under
/srv/kseries); rich_report() puts it under TMP with those paths rewritten, and writes what
the report points at: the thread it applied (cover letter and three patches with their
Message-IDs), the patch files the checks stage keeps, and a few logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.export import ExportSettings
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "report-golden.json"
RICH = FIXTURES / "report-rich.json"
RICH_ROOT = "/srv/kseries"
COVER_ID = "20260110.cover.v3@example.org"
SUBJECTS = ("mm/memory_hotplug: add MHP_DRIVER_MANAGED",
            "virtio-mem: add memory as driver-managed with MHP_DRIVER_MANAGED",
            "mm/memory_hotplug: KUnit tests for driver-managed memory")


@dataclass(frozen=True)
class Laid:
    report: dict[str, Any]
    report_dir: Path
    root: Path

    def settings(self, **extra: Any) -> ExportSettings:
        return ExportSettings(report_dir=self.report_dir, **extra)


def message_id(index: int) -> str:
    return f"20260110.patch{index}.v3@example.org"


def patch_text(index: int) -> str:
    return (f"From {index:x}{'0' * 39} Mon Sep 17 00:00:00 2001\n"
            f"From: David Example <david@example.org>\n"
            f"Subject: [PATCH {index}/3] {SUBJECTS[index - 1]}\n\n"
            f"Signed-off-by: David Example <david@example.org>\n---\n"
            f"diff --git a/mm/f{index}.c b/mm/f{index}.c\n--- a/mm/f{index}.c\n"
            f"+++ b/mm/f{index}.c\n@@ -1 +1 @@\n-old {index}\n+new {index}\n")


def thread_mbox() -> str:
    mails = [("0/3", "mm: driver-managed hot-plugged memory and kexec", COVER_ID, "cover\n")]
    mails += [(f"{i}/3", SUBJECTS[i - 1], message_id(i), patch_text(i).split("\n\n", 1)[1])
              for i in (1, 2, 3)]
    return "".join(
        f"From nobody Mon Sep 17 00:00:00 2001\nFrom: David Example <david@example.org>\n"
        f"Subject: [PATCH v3 {n}] {subject}\nMessage-Id: <{mid}>\n"
        + (f"In-Reply-To: <{COVER_ID}>\n" if mid != COVER_ID else "")
        + f"Date: Sat, 10 Jan 2026 10:00:0{i} +0000\n\n{body}\n"
        for i, (n, subject, mid, body) in enumerate(mails))


def rich_report(tmp: Path, with_files: bool = True) -> Laid:
    root = tmp / "srv"
    out = root / "out"
    text = RICH.read_text().replace(RICH_ROOT, str(root))
    report = json.loads(text)
    out.mkdir(parents=True)
    (out / "report.json").write_text(text)
    if with_files:
        checks = out / "logs" / "checks"
        checks.mkdir(parents=True)
        for index in (1, 2, 3):
            (checks / f"patch-{index}.patch").write_text(patch_text(index))
        (checks / "checkpatch-patch-2.log").write_text(
            "WARNING: line length of 104 exceeds 100 columns\n")
        (root / "patches").mkdir()
        (root / "patches" / "v3.mbx").write_text(thread_mbox())
    return Laid(report, out, root)


def golden_report() -> Laid:
    return Laid(json.loads(GOLDEN.read_text()), FIXTURES, FIXTURES)
