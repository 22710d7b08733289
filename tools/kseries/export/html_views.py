"""The stage-specific views of the HTML page, each read from the stage's data as report.json
holds it: the build's per-arch x per-file coverage matrix and its new warnings (0-day
style), KUnit cases per arch with the base next to the series, the VM checks per arch and
phase, and the revisions diff. A view whose data is not in the report is left out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kseries.export.html_base import (
    Html,
    Json,
    badge,
    join,
    row,
    status_of,
    symbols,
    table,
    tag,
)

# The build stage's cell status -> the class and the words on the page.
CELL_STATES: Mapping[str, tuple[str, str]] = {
    "built": ("compiled", "compiled"),
    "not-buildable": ("not-buildable", "not buildable"),
    "failed": ("failed", "failed"),
}


# vmtest's check summary ends with the base's verdict when the base ran (checks.compare).
BASE_RE = re.compile(r"\[base: (\w+)\]")


# -- build: the coverage matrix ----------------------------------------------------------


def coverage_arches(data: Json) -> list[str]:
    """The arches of the build, in the build's order (data.arches), then any other a row names."""
    arches = [str(a) for a in data.get("arches") or {}]
    for cells in (data.get("coverage") or {}).values():
        arches += [str(a) for a in cells if str(a) not in arches]
    return arches


def coverage_cell(cell: Json | None, path: str, arch: str) -> Html:
    if not cell:
        return tag("td", "-", cls="cell absent", data_file=path, data_arch=arch,
                   title="not built for this arch in this run")
    status = str(cell.get("status"))
    cls, words = CELL_STATES.get(status, ("unknown", status))
    reason = str(cell.get("reason") or "")
    parts = [tag("span", words, cls="state")]
    if status == "not-buildable":
        parts.append(symbols(reason))
    if reason:
        parts.append(tag("span", reason, cls="why"))
    if cell.get("calls"):
        parts.append(tag("span", f"calls: {cell['calls']}", cls="why calls"))
    return tag("td", *parts, cls=f"cell {cls}", data_file=path, data_arch=arch)


def coverage_counts(coverage: Json) -> dict[str, int]:
    counts = {cls: 0 for cls, _ in CELL_STATES.values()}
    for cells in coverage.values():
        for cell in cells.values():
            cls = CELL_STATES.get(str(cell.get("status")), ("unknown", ""))[0]
            counts[cls] = counts.get(cls, 0) + 1
    return counts


def coverage_view(data: Json) -> Html:
    """Rows: files; columns: arches; a cell: compiled / not buildable (+ the gating
    symbol) / failed, with the reason the build stage gave."""
    coverage: Json = data.get("coverage") or {}
    if not coverage:
        return Html("")
    arches = coverage_arches(data)
    rows = [row(tag("th", tag("code", path), scope="row"),
                *(coverage_cell(cells.get(arch), path, arch) for arch in arches))
            for path, cells in coverage.items()]
    counts = coverage_counts(coverage)
    legend = tag("p", *(tag("span", f"{counts.get(cls, 0)} {words}", cls=f"cell {cls}")
                        for cls, words in CELL_STATES.values()), cls="legend")
    return join([tag("h3", "Coverage: which arch compiled which file"), legend,
                 table(["file", *arches], rows, id="coverage")])


# -- build: new warnings, 0-day style ----------------------------------------------------


@dataclass(frozen=True)
class WarningBlock:
    """The 0-day lines of one arch, and the steps that printed exactly these lines."""

    arch: str
    steps: tuple[str, ...]
    lines: tuple[str, ...]


def warning_blocks(checks: Sequence[Json]) -> list[WarningBlock]:
    blocks: list[WarningBlock] = []
    for check in checks:
        lines = tuple(str(line) for line in check.get("data", {}).get("new_warnings") or ())
        if not lines:
            continue
        arch = str(check.get("arch") or check.get("name", "").split(" ")[0])
        step = str(check.get("step") or check.get("name", ""))
        same = next((i for i, b in enumerate(blocks) if (b.arch, b.lines) == (arch, lines)),
                    None)
        if same is None:
            blocks.append(WarningBlock(arch, (step,), lines))
        else:
            blocks[same] = WarningBlock(arch, (*blocks[same].steps, step), lines)
    return blocks


def warning_line(line: str, arch: str) -> Html:
    if line.startswith(">>"):
        return tag("span", line, cls="new-warning", data_arch=arch)
    return Html(join([line]))


def warnings_view(checks: Sequence[Json]) -> Html:
    """Every arch's new warnings as the kernel test robot writes them: all warnings of the
    objects, the new ones prefixed by >> (file:line: warning: text [flag])."""
    blocks = warning_blocks(checks)
    if not blocks:
        return Html("")
    parts = [tag("h3", "New warnings")]
    for block in blocks:
        news = sum(1 for line in block.lines if line.startswith(">>"))
        parts.append(tag("p", tag("strong", block.arch), f" at {', '.join(block.steps)}: "
                                                         f"{news} new warning(s)"))
        body = join((warning_line(line, block.arch) for line in block.lines), "\n")
        parts.append(tag("pre", body, cls="oday", data_arch=block.arch))
    return tag("div", *parts, id="new-warnings")


# -- kunit: cases per arch, base next to series --------------------------------------------


def run_label(run: Json) -> str:
    variant = str(run.get("variant"))
    return f"patch {run.get('patch')}" if variant == "commit" else variant


def run_order(arches: Sequence[str], run: Json) -> tuple[int, int, int]:
    """Per arch in the order they ran: the base, every patch, the series."""
    rank = {"base": 0, "commit": 1, "series": 2}.get(str(run.get("variant")), 3)
    return arches.index(str(run.get("arch"))), rank, int(run.get("patch") or 0)


def case_name(case: Json) -> str:
    return str(case.get("full_name") or case.get("name"))


def kunit_case_names(runs: Sequence[Json]) -> list[str]:
    """Every case name, the series runs' order first."""
    names: list[str] = []
    for run in sorted(runs, key=lambda r: str(r.get("variant")) != "series"):
        names += [case_name(c) for c in run.get("cases") or () if case_name(c) not in names]
    return names


def kunit_cell(run: Json, name: str) -> Html:
    arch, variant = str(run.get("arch")), str(run.get("variant"))
    case = next((c for c in run.get("cases") or () if case_name(c) == name), None)
    if case is None:
        return tag("td", "-", cls="absent", title=str(run.get("outcome") or ""),
                   data_arch=arch, data_variant=variant)
    status = status_of(case)
    detail = str(case.get("reason") or " | ".join(case.get("diagnostics") or ()))
    return tag("td", tag("span", status, cls="state"),
               tag("span", detail, cls="why") if detail else "",
               cls=f"case s-{status}", data_arch=arch, data_variant=variant)


def kunit_view(data: Json) -> Html:
    """Rows: cases; columns: per arch its runs (base, patches, series) side by side."""
    runs: Sequence[Json] = data.get("runs") or ()
    if not runs:
        return Html("")
    arches = list(dict.fromkeys(str(r.get("arch")) for r in runs))
    runs = sorted(runs, key=lambda r: run_order(arches, r))
    head = [join([str(r.get("arch")), Html("<br>"), run_label(r),
                  tag("span", str(r.get("outcome") or ""), cls="why")]) for r in runs]
    rows = [row(tag("th", tag("code", name), scope="row"), *(kunit_cell(r, name) for r in runs))
            for name in kunit_case_names(runs)]
    notes = [tag("li", f"{r.get('arch')} {run_label(r)}: {r.get('summary') or r.get('outcome')}")
             for r in runs]
    return tag("div", tag("h3", "KUnit cases per arch, base vs series"),
               tag("p", "Without the series (base) the cases about what it changes must fail: "
                        "that proves the suite tests the series.", cls="muted"),
               table(["case", *head], rows, id="kunit-cases", cls="kunit"),
               tag("ul", *notes, cls="muted"), id="kunit")


# -- vmtest: checks per arch and phase -----------------------------------------------------


def vm_arch_data(data: Json) -> dict[str, Json]:
    """arch -> that arch's vmtest data (data.arches when several ran, else data itself)."""
    arches: Json = data.get("arches") or {}
    if arches:
        return {str(a): d for a, d in arches.items()}
    return {str(data["arch"]): data} if data.get("arch") else {}


def vm_tests(data: Json, checks: Sequence[Json]) -> dict[str, dict[str, tuple[str, str, str]]]:
    """arch -> "phase.check" -> (status, base status, summary): the side-by-side rows, with
    the status of the report's check (host recheck, known limits) where there is one."""
    by_name = {str(c.get("name")): c for c in checks}
    result: dict[str, dict[str, tuple[str, str, str]]] = {}
    for arch, arch_data in vm_arch_data(data).items():
        rows = result.setdefault(arch, {})
        for entry in arch_data.get("side_by_side") or ():
            test = str(entry.get("test"))
            check = by_name.get(f"{arch}.{test}")
            status = status_of(check) if check else str(entry.get("series"))
            rows[test] = (status, str(entry.get("base") or ""),
                          str(check.get("summary") or "") if check else "")
    for check in checks:  # e.g. the notes of a scenario the arch does not run
        name = str(check.get("name"))
        arch, _, test = name.partition(".")
        if " " in name or test.count(".") != 1 or test in result.get(arch, {}):
            continue
        summary = str(check.get("summary") or "")
        base = BASE_RE.search(summary)
        result.setdefault(arch, {})[test] = (status_of(check), base.group(1) if base else "",
                                             summary)
    return {arch: rows for arch, rows in result.items() if rows}


def vm_cell(entry: tuple[str, str, str] | None, arch: str, test: str) -> Html:
    if entry is None:
        return tag("td", "-", cls="absent", data_arch=arch)
    status, base, summary = entry
    cls = status if status in ("pass", "warn", "fail", "error", "skip") else "error"
    return tag("td", tag("span", status, cls="state"),
               tag("span", f"base: {base}", cls="why base") if base and base != "not run"
               else "", cls=f"vm s-{cls}", title=summary or None, data_arch=arch,
               data_test=test)


def vmtest_view(data: Json, checks: Sequence[Json]) -> Html:
    """Rows: phase and check; columns: arches; a cell: the series' status (the base's below)."""
    tests = vm_tests(data, checks)
    if not tests:
        return Html("")
    arches = list(tests)
    names = list(dict.fromkeys(t for rows in tests.values() for t in rows))
    rows = []
    for name in names:
        phase, _, check = name.partition(".") if "." in name else ("", "", name)
        rows.append(row(tag("td", phase), tag("td", tag("code", check)),
                        *(vm_cell(tests[a].get(name), a, name) for a in arches)))
    skipped = [tag("li", f"{n}: {s}") for n, s in (data.get("other_arches") or {}).items()]
    return tag("div", tag("h3", "VM checks per arch and phase"),
               table(["phase", "check", *arches], rows, id="vmtest"),
               tag("ul", *skipped, cls="muted") if skipped else "", id="vm-checks")


# -- revisions -------------------------------------------------------------------------------


def revisions_view(data: Json) -> Html:
    """What changed since the previous revision: per patch unchanged/changed/new/dropped."""
    patches: Sequence[Json] = data.get("patches") or ()
    if not data.get("old") and not patches:
        return Html("")
    counts = {k: sum(1 for p in patches if p.get("kind") == k)
              for k in ("changed", "new", "dropped", "unchanged")}
    words = ", ".join(f"{n} {k}" for k, n in counts.items())
    base = "same base" if data.get("same_base") else (
        f"different bases: {str(data.get('old_base'))[:12]} vs {str(data.get('new_base'))[:12]}")
    rows = [revision_row(p) for p in patches]
    return tag("div", tag("h3", f"Revisions: {data.get('old')} -> {data.get('new')}"),
               tag("p", f"{words}; {base}"),
               table(["change", "old -> new", "subject"], rows, id="revisions"),
               id="revisions-diff")


KIND_STATUS: Mapping[str, str] = {"unchanged": "skip", "changed": "warn", "new": "pass",
                                  "dropped": "fail"}


def revision_row(patch: Json) -> Html:
    kind = str(patch.get("kind"))
    interdiff = str(patch.get("interdiff") or "")
    subject: list[Html | str] = [str(patch.get("subject") or "")]
    if interdiff:
        subject.append(tag("details", tag("summary", "interdiff"), tag("pre", interdiff)))
    return row(tag("td", badge(KIND_STATUS.get(kind, "skip")), " ", kind),
               tag("td", f"{patch.get('old') or '-'} -> {patch.get('new') or '-'}"),
               tag("td", *subject), cls=f"rev {kind}")


def stage_views(stage: Json) -> Html:
    """The views of STAGE's kind, before its list of checks."""
    name, data = str(stage.get("name")), stage.get("data") or {}
    checks: Sequence[Json] = stage.get("checks") or ()
    views: Iterable[Html] = ()
    if name == "build":
        views = (coverage_view(data), warnings_view(checks))
    elif name == "kunit":
        views = (kunit_view(data),)
    elif name == "vmtest":
        views = (vmtest_view(data, checks),)
    elif name == "revisions":
        views = (revisions_view(data),)
    return join(views)

