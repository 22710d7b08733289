"""NIPA's result layout (nipa/<series>/...), as netdev's patch bot writes and uploads it.

NIPA (github.com/linux-netdev/nipa, core/tester.py and core/test.py) writes one directory
per series, in it one directory per series-level test and one directory per patch (named
by patchwork's patch id, an integer), in each of those one directory per patch-level test.
A test directory holds retcode (0 success, 250 warning, anything else a failure; 111
pending), desc (one line), summary ("==========\\n<test> - OKAY|WARNING|FAILED", then the
failure output), stdout and stderr (only when there is something to say). pw_upload.py posts
each test as a patchwork check named after its directory, the series-level ones on every
patch, once the series directory holds .tester_done.

Mapping: the series directory is <series>-<revision>; patch directories are the patch's
position in the series (1, 2, ...; a poster maps them to patchwork ids). A check about patch
N (step "patch N") goes under N: the checks stage's as its rule (checkpatch, signoff, fixes,
maintainers), the others as <stage>[_<name>] (build_x86_64, apply_trailer_2, ...).
Series-level checks are one test per stage (per rule for the checks stage: kernel-doc,
base-commit), so that uploading posts a few checks per patch, not hundreds. retcode: pass 0,
warn 250, fail 1, error 3 (kseries' exit code for an infrastructure error; a failure to
NIPA). A test whose checks were all skipped is not written (NIPA has no skip and would post
it as a failure without a retcode, or a success with 0); skipped.txt lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.export import ExportSettings
from kseries.export.common import (
    Item,
    Json,
    items,
    one_line,
    relative_log,
    safe,
    stages,
    worst,
    write_text,
)

DIR_NAME = "nipa"
RETCODE = {"pass": 0, "warn": 250, "fail": 1, "error": 3}
VERDICT = {0: "OKAY", 250: "WARNING"}
DONE_MARKER = ".tester_done"


@dataclass(frozen=True)
class Test:
    """One NIPA test directory: its name, where it goes (None: the series), its checks."""

    name: str
    patch: int | None
    checks: tuple[Item, ...]
    stage_summary: str = ""

    @property
    def status(self) -> str:
        return worst([i.status for i in self.checks])


def test_name(item: Item) -> str:
    """The directory name of a patch-level check: the rule, or stage[_what] ."""
    if item.stage == "checks":
        return safe(item.rule or item.name)
    rest = item.name.replace(item.step or "", " ") if item.step else item.name
    rest = safe(rest, "")
    return f"{safe(item.stage)}_{rest}" if rest and rest != safe(item.stage) else safe(
        item.stage)


def stage_tests(entry: Json) -> list[Test]:
    found = items(entry)
    name = safe(str(entry.get("name") or "stage"))
    tests: list[Test] = []
    taken: dict[tuple[int | None, str], int] = {}

    def add(test_dir: str, patch: int | None, checks: list[Item], summary: str = "") -> None:
        count = taken.get((patch, test_dir), 0) + 1
        taken[(patch, test_dir)] = count
        unique = test_dir if count == 1 else f"{test_dir}_{count}"
        tests.append(Test(unique, patch, tuple(checks), summary))

    for item in found:
        if item.patch is not None:
            add(test_name(item), item.patch, [item])
    series = [i for i in found if i.patch is None]
    if name == "checks":
        rules = dict.fromkeys(safe(i.rule or i.name) for i in series)
        for rule in rules:
            add(rule, None, [i for i in series if safe(i.rule or i.name) == rule])
    elif series:
        whole = len(series) == len(found)
        add(name, None, series, str(entry.get("summary") or "") if whole else "")
    return tests


def check_lines(item: Item, settings: ExportSettings) -> list[str]:
    lines = [f"{item.status.upper():5} {item.name}: {item.summary}"]
    log = relative_log(settings, item.check.get("log"))
    if log:
        lines.append(f"      log: {log}")
    if item.check.get("reproducer"):
        lines.append(f"      reproduce: {item.check['reproducer']}")
    return lines


def desc(test: Test) -> str:
    status = test.status
    first = next(i for i in test.checks if i.status == status)
    if test.stage_summary:
        text = test.stage_summary
    elif len(test.checks) == 1:
        text = first.summary
    elif status == "pass":
        text = f"{sum(i.status == 'pass' for i in test.checks)} of {len(test.checks)} passed"
    else:
        text = f"{first.name}: {first.summary}"
    return one_line(f"error: {text}" if status == "error" else text, 1000)


def write_test(folder: Path, test: Test, settings: ExportSettings) -> list[Path]:
    """The files of TEST in FOLDER/<name>, as NIPA's Test.write_result() lays them out."""
    where = folder / test.name
    retcode = RETCODE[test.status]
    out = "".join(f"{line}\n" for i in test.checks for line in check_lines(i, settings))
    err = "".join(f"{line}\n" for i in test.checks if i.status in ("fail", "error")
                  for line in check_lines(i, settings))
    summary = f"==========\n{test.name} - {VERDICT.get(retcode, 'FAILED')}\n"
    if retcode not in VERDICT:
        summary += "\n" + (err or out)
    written = [write_text(where / "retcode", str(retcode)),
               write_text(where / "desc", desc(test) + "\n"),
               write_text(where / "summary", summary),
               write_text(where / "stdout", out)]
    if err:
        written.append(write_text(where / "stderr", err))
    return written


def write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]:
    series = out / DIR_NAME / f"{safe(str(report.get('series')))}-" \
                              f"{safe(str(report.get('revision')))}"
    series.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: list[str] = []
    for entry in stages(report):
        for test in stage_tests(entry):
            place = series if test.patch is None else series / str(test.patch)
            if test.status not in RETCODE:
                where = "series" if test.patch is None else f"patch {test.patch}"
                skipped.append(f"{where}: {test.name}: {test.checks[0].summary}")
                continue
            written += write_test(place, test, settings)
    if skipped:
        written.append(write_text(series / "skipped.txt", "".join(f"{s}\n" for s in skipped)))
    if not report.get("interrupted"):
        written.append(write_text(series / DONE_MARKER, ""))
    return written
