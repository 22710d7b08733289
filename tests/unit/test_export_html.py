"""The html format on the golden report and on a rich one (tests/fixtures/report-html.json:
a build over 4 arches with not-buildable and failed cells and new warnings, KUnit base vs
series on 4 arches, vmtest on x86_64 and arm64, a revisions diff): what the page holds, read
back with a small DOM parser, and the page in a real browser (headless Chromium: the DOM it
builds and a screenshot)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from kseries.export import ExportSettings, writer
from tests.conftest import FIXTURES

GOLDEN = FIXTURES / "report-golden.json"
RICH = FIXTURES / "report-html.json"
CHROMIUM_TIMEOUT_S = 120
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}


# -- a small DOM ---------------------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    content: list[Node | str] = field(default_factory=list)

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.content)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.classes)]

    def by_id(self, ident: str) -> Node:
        found = [n for n in self.walk() if n.attrs.get("id") == ident]
        assert len(found) == 1, f"{len(found)} elements with id {ident}"
        return found[0]


class DomParser(HTMLParser):
    """Elements nest as written; a closing tag that does not close the open element fails
    (the page must be well formed, not only parse)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].content.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse(text: str) -> Node:
    parser = DomParser()
    parser.feed(text)
    parser.close()
    assert parser.stack == [parser.root], "unclosed elements"
    return parser.root


def cells(table: Node) -> dict[tuple[str, str], Node]:
    """(file, arch) -> the td of the coverage matrix."""
    return {(td.attrs["data-file"], td.attrs["data-arch"]): td for td in table.find_all("td")}


# -- fixtures ------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def render(report: dict[str, Any], out: Path, report_dir: Path = FIXTURES) -> Path:
    written = writer("html")(report, out, ExportSettings(report_dir=report_dir))
    assert written == [out / "index.html"]
    return written[0]


@pytest.fixture
def rich(tmp_path: Path) -> Path:
    return render(load(RICH), tmp_path / "html")


def stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["stages"] if s["name"] == name)
    return found


def count_cells(report: dict[str, Any], status: str) -> int:
    coverage = stage(report, "build")["data"]["coverage"]
    return sum(1 for row in coverage.values() for cell in row.values()
               if cell["status"] == status)


# -- the page ------------------------------------------------------------------------------


def test_golden_report_shows_run_stages_and_checks(tmp_path: Path) -> None:
    page = render(load(GOLDEN), tmp_path / "out")
    dom = parse(page.read_text())
    facts = {tr.find_all("th")[0].text: tr.find_all("td")[0].text
             for tr in dom.by_id("run").find_all("tr")}
    assert facts["series"] == "mhp-driver-managed" and facts["revision"] == "v2"
    assert facts["base"] == "b" * 12 and facts["head"] == "h" * 12
    assert facts["status"] == "WARN" and facts["exit code"] == "250"
    assert facts["started"] == "2026-01-01T00:00:00Z" and facts["kseries"] == "<version>"
    stages = dom.by_id("stages").find_all("tbody")[0].find_all("tr")
    assert [tr.find_all("td")[0].text for tr in stages] == ["apply", "build"]
    assert [tr.find_all("span", "badge")[0].text for tr in stages] == ["PASS", "WARN"]
    build = dom.by_id("checks-build").find_all("tbody")[0].find_all("tr")
    assert len(build) == 1 and "x86_64 head" in build[0].text
    href = build[0].find_all("a")[0].attrs["href"]  # a URL: quoted
    assert href == quote(os.path.relpath(FIXTURES / "<log>", tmp_path / "out"))
    assert href.endswith("/tests/fixtures/%3Clog%3E")
    assert not [n for n in dom.walk() if n.attrs.get("id") == "coverage"]  # no data for it
    assert dom.by_id("attention").find_all("code")[0].text == "x86_64 head"


def test_coverage_matrix_cells_are_the_reports(rich: Path) -> None:
    report = load(RICH)
    matrix = parse(rich.read_text()).by_id("coverage")
    head = [th.text for th in matrix.find_all("thead")[0].find_all("th")]
    assert head == ["file", "x86_64", "arm64", "powerpc", "s390"]
    rows = [tr.find_all("th")[0].text for tr in matrix.find_all("tbody")[0].find_all("tr")]
    assert rows == list(stage(report, "build")["data"]["coverage"])
    assert len(matrix.find_all("td", "compiled")) == count_cells(report, "built") == 11
    assert len(matrix.find_all("td", "not-buildable")) == count_cells(report, "not-buildable")
    assert len(matrix.find_all("td", "failed")) == count_cells(report, "failed") == 1
    by_place = cells(matrix)
    failed = by_place[("drivers/dax/kmem.c", "arm64")]
    assert failed.classes == {"cell", "failed"} and "fails at patch-4" in failed.text
    gated = by_place[("drivers/virtio/virtio_mem.c", "powerpc")]
    assert gated.classes == {"cell", "not-buildable"}
    assert [c.text for c in gated.find_all("code", "symbol")] == ["CONFIG_VIRTIO_MEM"]
    assert gated.find_all("span", "state")[0].text == "not buildable"
    built = by_place[("drivers/acpi/acpi_memhotplug.c", "x86_64")]
    assert "compiled" in built.classes and "calls: compiled" in built.text


def test_new_warnings_in_0day_style_with_their_arch(rich: Path) -> None:
    dom = parse(rich.read_text())
    box = dom.by_id("new-warnings")
    news = box.find_all("span", "new-warning")
    assert [(n.attrs["data-arch"], n.text) for n in news] == [
        ("x86_64", ">> mm/memory_hotplug.c:1512:13: warning: variable 'nid' set but not used "
                   "[-Wunused-but-set-variable]"),
        ("arm64", ">> drivers/virtio/virtio_mem.c:640:23: warning: comparison of distinct "
                  "pointer types lacks a cast [-Wcompare-distinct-pointer-types]")]
    captions = [p.text for p in box.find_all("p")]
    assert captions == ["x86_64 at patch-2, patch-3, patch-4: 1 new warning(s)",
                        "arm64 at patch-3: 1 new warning(s)"]
    block = box.find_all("pre", "oday")[0].text
    assert block.startswith("All warnings (new ones prefixed by >>):\n")
    assert "   mm/memory_hotplug.c:1460:6: warning: no previous prototype" in block


def test_kunit_cases_base_next_to_series(rich: Path) -> None:
    table = parse(rich.read_text()).by_id("kunit-cases")
    head = [th.text for th in table.find_all("thead")[0].find_all("th")]
    assert head == ["case", "x86_64basefailed", "x86_64seriespassed", "arm64seriespassed",
                    "powerpcseriespassed", "s390seriespassed"]
    rows = {tr.find_all("th")[0].text: tr.find_all("td")
            for tr in table.find_all("tbody")[0].find_all("tr")}
    assert len(rows) == 5
    flag = rows["memory_hotplug_driver_managed.flag_is_recorded"]
    assert [td.find_all("span", "state")[0].text for td in flag] == ["fail", "pass", "pass",
                                                                    "pass", "pass"]
    assert "s-fail" in flag[0].classes and "EXPECTATION FAILED" in flag[0].text
    hole = rows["memory_hotplug_driver_managed.powerpc_hole_search_skips_region"]
    assert [td.attrs["data-arch"] for td in hole if "s-pass" in td.classes] == ["powerpc"]
    assert "powerpc only" in hole[1].text


def test_vm_checks_per_arch_and_phase(rich: Path) -> None:
    table = parse(rich.read_text()).by_id("vmtest")
    head = [th.text for th in table.find_all("thead")[0].find_all("th")]
    assert head == ["phase", "check", "x86_64", "arm64"]
    rows = {(tds[0].text, tds[1].text): tds[2:] for tds in
            (tr.find_all("td") for tr in table.find_all("tbody")[0].find_all("tr"))}
    assert len(rows) == 8
    x86, arm = rows[("kdump_load", "kdump_dumps_virtio_mem")]
    assert "s-pass" in x86.classes and "s-warn" in arm.classes  # arm64's known limitation
    assert "known limitation" in arm.attrs["title"]
    fixed = rows[("kexec_file", "kexec_file_segments")][0]
    assert fixed.find_all("span", "base")[0].text == "base: fail"
    assert not rows[("boot", "iomem_virtio_mem")][1].find_all("span", "base")  # not run


def test_revisions_diff_summary(rich: Path) -> None:
    dom = parse(rich.read_text())
    box = dom.by_id("revisions-diff")
    assert box.find_all("h3")[0].text == "Revisions: v1 -> v2"
    assert "1 changed, 1 new, 1 dropped, 2 unchanged; same base" in box.text
    kinds = [tr.attrs["class"] for tr in dom.by_id("revisions").find_all("tr", "rev")]
    assert kinds == ["rev unchanged", "rev changed", "rev new", "rev unchanged", "rev dropped"]
    assert "strstarts(resource_name" in box.find_all("details")[0].text


def test_everything_is_escaped_and_self_contained(tmp_path: Path) -> None:
    report = load(RICH)
    evil = copy.deepcopy(report)
    stage(evil, "checks")["checks"][0]["summary"] = '<script>alert("x")</script> & "q"'
    stage(evil, "checks")["checks"][0]["name"] = "<img src=x onerror=alert(1)>"
    text = render(evil, tmp_path / "out").read_text()
    assert "<script" not in text and "<img" not in text and "<link" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;q&quot;" in text
    assert "mm/memory_hotplug: use &lt;linux/memory.h&gt; &amp; MHP_DRIVER_MANAGED" in text
    assert "http://" not in text and "https://" not in text  # no CDN, nothing fetched
    dom = parse(text)
    assert dom.find_all("style") and not dom.find_all("script")


def test_logs_are_linked_relative_to_the_page(tmp_path: Path) -> None:
    report = load(RICH)
    logs = tmp_path / "run"
    stage(report, "vmtest")["checks"][0]["log"] = str(logs / "vmtest" / "console.log")
    page = render(report, tmp_path / "site" / "html", report_dir=logs)
    hrefs = [a.attrs["href"] for a in parse(page.read_text()).find_all("a", "log")]
    assert "../../run/build/x86_64/patch-1.log" in hrefs  # relative in the report
    assert "../../run/vmtest/console.log" in hrefs  # absolute in the report
    assert all(not h.startswith("/") for h in hrefs)


# -- in a real browser ---------------------------------------------------------------------


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    program = shutil.which("chromium")
    assert program, "chromium is not installed: tools/install-deps.sh installs it"
    return subprocess.run([program, "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_builds_the_matrix_from_the_page(rich: Path, tmp_path: Path) -> None:
    report = load(RICH)
    dom = parse(chromium("--dump-dom", rich.as_uri(), profile=tmp_path / "profile").stdout)
    matrix = dom.by_id("coverage")
    assert len(matrix.find_all("td", "compiled")) == count_cells(report, "built")
    assert len(matrix.find_all("td", "not-buildable")) == count_cells(report, "not-buildable")
    assert len(matrix.find_all("td", "failed")) == count_cells(report, "failed")
    assert len(cells(matrix)) == 6 * 4
    assert dom.by_id("kunit-cases") and dom.by_id("vmtest") and dom.by_id("new-warnings")


def test_chromium_screenshot_is_a_full_page(rich: Path, tmp_path: Path) -> None:
    """1400x3000 as asked, and many times what a blank page of that size compresses to."""
    shot, blank = tmp_path / "index.png", tmp_path / "blank.png"
    empty = tmp_path / "blank.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>\n")
    for page, png in ((rich, shot), (empty, blank)):
        chromium(f"--screenshot={png}", "--window-size=1400,3000", page.as_uri(),
                 profile=tmp_path / "profile")
        assert png_size(png) == (1400, 3000)
    assert shot.stat().st_size > max(100_000, 5 * blank.stat().st_size)


def test_needs_attention_lists_the_worst_first(tmp_path: Path) -> None:
    """Every failed, erred or warned check, errors first; a stage that erred without a
    check (it raised) stands for itself."""
    report = load(RICH)
    report["stages"].append({"name": "revisions", "status": "error", "duration_s": 300.0,
                             "summary": "git range-diff v1...v2 timed out after 300 s",
                             "checks": [], "log": None, "reproducer": None, "data": {}})
    dom = parse(render(report, tmp_path / "out").read_text())
    rows = [[td.text for td in tr.find_all("td")[:3]]
            for tr in dom.by_id("attention").find_all("tbody")[0].find_all("tr")]
    assert rows[0] == ["revisions", "ERROR", "the stage"]
    wanted = sum(1 for s in report["stages"] for c in s["checks"]
                 if c["status"] in ("fail", "warn", "error"))
    assert len(rows) == wanted + 1 == 9
    assert ["build", "FAIL", "arm64 patch-4"] in rows
    assert ["vmtest", "WARN", "arm64.kdump_load.kdump_dumps_virtio_mem"] in rows
    assert [r[1] for r in rows] == sorted((r[1] for r in rows),
                                          key=["ERROR", "FAIL", "WARN"].index)


def test_vm_checks_without_side_by_side_data_come_from_the_check_names(tmp_path: Path) -> None:
    """A report without data.side_by_side (an older one): the table from the checks named
    ARCH.PHASE.CHECK, the base's verdict from their summaries."""
    report = load(RICH)
    vm = stage(report, "vmtest")["data"]
    vm.pop("side_by_side", None)
    for arch_data in vm["arches"].values():
        arch_data.pop("side_by_side")
    table = parse(render(report, tmp_path / "out").read_text()).by_id("vmtest")
    rows = {(tds[0].text, tds[1].text): tds[2:] for tds in
            (tr.find_all("td") for tr in table.find_all("tbody")[0].find_all("tr"))}
    assert len(rows) == 8
    assert rows[("kexec_file", "kexec_file_segments")][0].find_all("span", "base")[0].text \
        == "base: fail"
    assert "s-warn" in rows[("kdump_load", "kdump_dumps_virtio_mem")][1].classes


def test_results_come_before_the_stages_the_matrix_first(rich: Path) -> None:
    dom = parse(rich.read_text())
    order = [n.attrs["id"] for n in dom.walk() if n.attrs.get("id") in {
        "attention", "results", "coverage", "new-warnings", "kunit-cases", "vmtest",
        "revisions", "stage-tree", "stage-build"}]
    assert order == ["attention", "results", "coverage", "new-warnings", "kunit-cases",
                     "vmtest", "revisions", "stage-tree", "stage-build"]
