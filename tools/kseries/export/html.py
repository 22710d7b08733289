"""The `html` format: OUT/index.html, one self-contained static page of a report.json.

No server, no CDN, no JavaScript: inline CSS only, every text escaped, every log linked
relative to the page. It shows the run (series, revision, tree, base, head, status, exit
code, times), what needs attention, the views of the stages that have one (html_views.py:
the build's arch x file coverage matrix and new warnings, KUnit cases per arch base vs
series, VM checks per arch and phase, the revisions diff), then every stage and its checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kseries.export import ExportSettings
from kseries.export.html_base import (
    STATUSES,
    Html,
    Json,
    Place,
    badge,
    duration,
    join,
    page,
    row,
    status_of,
    table,
    tag,
)
from kseries.export.html_views import stage_views

PAGE_NAME = "index.html"
VIEW_ORDER = ("build", "kunit", "vmtest", "revisions")


def write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]:
    """Write OUT/index.html from REPORT; the one file written."""
    out.mkdir(parents=True, exist_ok=True)
    place = Place(out.resolve(), settings.report_dir.resolve())
    path = out / PAGE_NAME
    path.write_text(render(report, place))
    return [path]


def render(report: Json, place: Place) -> str:
    stages: Sequence[Json] = report.get("stages") or ()
    title = f"kseries: {report.get('series')} {report.get('revision')}"
    return page(f"{title} - {status_of(report).upper()}",
                [run_header(report, title), overview(stages), attention(stages, place),
                 results(stages), *(stage_section(s, place) for s in stages)])


# -- the run ---------------------------------------------------------------------------------


def short(commit: object) -> Html:
    value = str(commit or "")
    return tag("code", value[:12], title=value) if value else Html("-")


def run_header(report: Json, title: str) -> Html:
    status = status_of(report)
    interrupted = " (interrupted)" if report.get("interrupted") else ""
    facts = [("series", report.get("series")), ("revision", report.get("revision")),
             ("tree", report.get("tree")), ("base", short(report.get("base"))),
             ("head", short(report.get("head"))),
             ("status", join([badge(status), interrupted])),
             ("exit code", report.get("exit_code")), ("started", report.get("started")),
             ("ended", report.get("ended") or "not finished"),
             ("kseries", report.get("kseries_version"))]
    tools: Mapping[str, Any] = report.get("tools") or {}
    # the tools' versions fold away (<details> needs no script): open, they pushed the
    # results a screen down
    versions = [(f"tool {name}", version) for name, version in tools.items()]
    return tag("header", tag("h1", title, " ", badge(status)),
               tag("table", tag("tbody", *fact_rows(facts)), cls="facts", id="run"),
               tag("details", tag("summary", f"versions of the {len(versions)} tools used"),
                   tag("table", tag("tbody", *fact_rows(versions)), cls="facts", id="tools")),
               id="top")


def fact_rows(facts: Sequence[tuple[str, Any]]) -> list[Html]:
    return [row(tag("th", name, scope="row"), tag("td", value if isinstance(value, Html)
                                                  else str(value if value is not None else "-")))
            for name, value in facts]


def check_counts(checks: Sequence[Json]) -> str:
    counts = {s: sum(1 for c in checks if status_of(c) == s) for s in STATUSES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no checks"


def overview(stages: Sequence[Json]) -> Html:
    rows = [row(tag("td", tag("a", str(s.get("name")), href=f"#stage-{s.get('name')}")),
                tag("td", badge(status_of(s))), tag("td", str(s.get("summary") or "")),
                tag("td", duration(s.get("duration_s")), cls="num"),
                tag("td", check_counts(s.get("checks") or ())), cls=f"stage st-{status_of(s)}")
            for s in stages]
    return join([tag("h2", "Stages"),
                 table(["stage", "status", "summary", "time", "checks"], rows, id="stages")])


def attention(stages: Sequence[Json], place: Place) -> Html:
    """Every check that failed, erred or warned, worst first, across the stages; a stage
    that did so without such a check (e.g. it raised) stands for itself."""
    rank = {"error": 0, "fail": 1, "warn": 2}
    found: list[tuple[Json, Json | None]] = []
    for stage in stages:
        checks = [c for c in stage.get("checks") or () if status_of(c) in rank]
        found += [(stage, c) for c in checks]
        if status_of(stage) in rank and all(status_of(c) != status_of(stage) for c in checks):
            found.append((stage, None))
    if not found:
        return Html("")
    found.sort(key=lambda item: rank[status_of(item[1] or item[0])])
    return join([tag("h2", f"Needs attention ({len(found)})"),
                 table(["stage", "status", "check", "summary", "log"],
                       (attention_row(s, c, place) for s, c in found), id="attention")])


def attention_row(stage: Json, check: Json | None, place: Place) -> Html:
    item = check or stage
    status = status_of(item)
    name = tag("code", str(check.get("name") or "")) if check else tag("em", "the stage")
    return row(tag("td", tag("a", str(stage.get("name")), href=f"#stage-{stage.get('name')}")),
               tag("td", badge(status)), tag("td", name), tag("td", str(item.get("summary") or "")),
               tag("td", place.log_link(item.get("log"))), cls=f"check st-{status}")


def results(stages: Sequence[Json]) -> Html:
    """The views of the stages that have one, the build's matrix first (VIEW_ORDER)."""
    order = {name: i for i, name in enumerate(VIEW_ORDER)}
    shown = sorted((s for s in stages if str(s.get("name")) in order),
                   key=lambda s: order[str(s.get("name"))])
    views = [view for view in (stage_views(s) for s in shown) if view]
    return tag("section", tag("h2", "Results"), *views, id="results") if views else Html("")


# -- one stage -------------------------------------------------------------------------------


def stage_section(stage: Json, place: Place) -> Html:
    name = str(stage.get("name"))
    status = status_of(stage)
    meta: list[Html | str] = [f"{duration(stage.get('duration_s'))}"]
    if stage.get("log"):
        meta += [" - ", place.log_link(stage.get("log"))]
    parts = [tag("h2", name, " ", badge(status)),
             tag("p", str(stage.get("summary") or ""), cls="summary"),
             tag("p", *meta, cls="muted")]
    if stage.get("reproducer"):
        parts.append(tag("p", "reproduce: ", tag("code", str(stage["reproducer"]))))
    parts.append(checks_table(name, stage.get("checks") or (), place))
    return tag("section", *parts, id=f"stage-{name}", cls=f"stage st-{status}")


def checks_table(stage: str, checks: Sequence[Json], place: Place) -> Html:
    if not checks:
        return Html("")
    rows = [check_row(c, place) for c in checks]
    return join([tag("h3", f"Checks ({check_counts(checks)})"),
                 table(["status", "check", "summary", "time", "log"], rows,
                       id=f"checks-{stage}", cls="checks")])


def check_row(check: Json, place: Place) -> Html:
    status = status_of(check)
    about = [str(check.get(k)) for k in ("arch", "step", "rule") if check.get(k)]
    name: list[Html | str] = [tag("code", str(check.get("name") or ""))]
    if about:
        name.append(tag("span", " / ".join(about), cls="why"))
    summary: list[Html | str] = [str(check.get("summary") or "")]
    if check.get("reproducer") and status not in ("pass", "skip"):
        summary.append(tag("span", "reproduce: ", tag("code", str(check["reproducer"])),
                           cls="why"))
    return row(tag("td", badge(status)), tag("td", *name), tag("td", *summary),
               tag("td", duration(check.get("duration_s")), cls="num"),
               tag("td", place.log_link(check.get("log"))), cls=f"check st-{status}")
