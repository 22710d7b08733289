"""The markup kit of the HTML page: text is escaped unless it is Html (markup built here),
tags and tables from parts, links to logs relative to the page, and the inline style sheet.

Nothing here needs JavaScript or anything outside the page: a reader opens index.html from
disk, or from any static file server, and sees all of it.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

STATUSES = ("pass", "warn", "fail", "error", "skip")
SYMBOL_RE = re.compile(r"\bCONFIG_[A-Za-z0-9_]+\b")


class Html(str):
    """Markup that is safe to put in the page as it is (built by this module)."""

    __slots__ = ()


Part = str | Html
Json = Mapping[str, Any]


def text(value: object) -> Html:
    """VALUE as escaped text (Html stays as it is)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Part], sep: str = "") -> Html:
    return Html(text(sep).join(text(p) for p in parts))


def tag(name: str, *children: Part, **attrs: object) -> Html:
    """<NAME ATTRS>CHILDREN</NAME>; an attribute cls is class, data_x is data-x; an
    attribute that is None or False is left out."""
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = "class" if key == "cls" else key.rstrip("_").replace("_", "-")
        rendered.append(f' {attr}="{text(value)}"')
    return Html(f"<{name}{''.join(rendered)}>{join(children)}</{name}>")


def status_of(item: Json) -> str:
    value = str(item.get("status") or "skip")
    return value if value in STATUSES else "error"


def badge(status: str) -> Html:
    return tag("span", status.upper(), cls=f"badge s-{status}")


def row(*cells: Part, cls: str | None = None) -> Html:
    return tag("tr", *cells, cls=cls)


def table(head: Sequence[Part], rows: Iterable[Html], **attrs: object) -> Html:
    header = tag("thead", row(*(tag("th", h, scope="col") for h in head)))
    return tag("table", header, tag("tbody", *rows), **attrs)


def symbols(reason: str) -> Html:
    """The Kconfig symbols named in REASON, each as <code class="symbol">."""
    found = list(dict.fromkeys(SYMBOL_RE.findall(reason)))
    return join((tag("code", s, cls="symbol") for s in found), " ")


@dataclass(frozen=True)
class Place:
    """Where the page goes and where the report's relative paths start."""

    page_dir: Path
    report_dir: Path

    def href(self, path: object) -> str | None:
        """PATH (relative to the report's directory, or absolute) relative to the page."""
        if not path:
            return None
        where = Path(str(path))
        if not where.is_absolute():
            where = self.report_dir / where
        return quote(os.path.relpath(where, self.page_dir))

    def log_link(self, path: object, label: str = "log") -> Html:
        href = self.href(path)
        return tag("a", label, href=href, cls="log") if href else Html("")


def duration(seconds: object) -> str:
    try:
        value = float(str(seconds))
    except ValueError:
        return ""
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1f2328; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
h3 { margin: 1.2em 0 .4em; } table { border-collapse: collapse; margin: .4em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } code, pre { font: 12px/1.35 ui-monospace, monospace; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 3px; font-weight: 600;
  font-size: .85em; border: 1px solid currentColor; }
.s-pass { color: #116329; background: #dafbe1; } .s-warn { color: #7d4e00; background: #fff8c5; }
.s-fail { color: #a40e26; background: #ffebe9; } .s-error { color: #6639ba; background: #fbefff; }
.s-skip { color: #57606a; background: #f6f8fa; }
.facts th { width: 9em; } .summary { margin: .3em 0; } .muted { color: #57606a; }
td.cell { min-width: 8em; } .compiled { background: #dafbe1; } .failed { background: #ffebe9; }
.not-buildable { background: #eaeef2; color: #424a53; } td.absent { color: #8c959f; }
.state { font-weight: 600; display: block; }
.why { font-size: .85em; display: block; max-width: 40em; }
code.symbol { background: #fff; border: 1px solid #afb8c1; padding: 0 2px; }
.new-warning { color: #a40e26; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
.legend span { margin-right: 1em; padding: 0 .4em; }
tr.st-fail > td:first-child, tr.st-error > td:first-child { border-left: 4px solid #cf222e; }
tr.st-warn > td:first-child { border-left: 4px solid #d4a72c; }
"""


def page(title: str, body: Sequence[Part]) -> Html:
    head = tag("head", Html('<meta charset="utf-8">'),
               Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
               tag("title", title), tag("style", Html(CSS)))
    return Html("<!DOCTYPE html>\n" + tag("html", head, tag("body", *body), lang="en") + "\n")
