"""KCIDB v5.3 JSON (kcidb.json): checkouts, builds and tests, as KernelCI's database takes them.

The schema is KCIDB I/O v5.3, the newest that kcidb-io's current release validates (the
tests validate every output with kcidb_io.schema's own validator). What maps to what:

- checkouts: the series revision ("<origin>:<series>:<revision>:<head>"): the base commit
  (git_commit_hash), the patch files in order (patchset_files) and KCIDB's patchset_hash
  (sha256 over the newline-terminated sha256 of each file, `sha256sum *.patch | cut -c-64 |
  sha256sum`), the cover letter's Message-ID, valid = the apply stage passed. The files are
  the checks stage's logs/checks/patch-N.patch (`git format-patch -1` of each applied
  commit); without all of them the hash and the files are left out rather than computed
  from something that is not what was applied. Results on the base without the series
  (the build base step, KUnit and vmtest base runs) belong to a checkout ":base" with an
  empty patchset_hash; a result at patch N of M (bisect steps) to a checkout ":patch-N".
- builds: one per arch and step of the build stage (base, patch-N or head), per KUnit run
  (kunit.py builds its own kernel) and per vmtest guest kernel; checks on the series'
  sources (apply, checks, callers, the build stage's coverage and bisect) hang on one
  ":source" build without architecture or status (nothing was compiled for them).
- tests: every check, with a dotted KCIDB path: kunit.<suite>.<case>, vmtest.<arch>.<phase>.
  <check>, callers.<name>, checks.patch<N>.<rule>, build.config / build.sparse /
  build.new_warnings on the build they concern, apply.<name>, <stage> for a stage that has
  no checks (tree, or one that raised).

Statuses: pass PASS, fail FAIL, error ERROR (kseries' own or a tool's fault: the status of
the code is unknown), skip SKIP. KCIDB has no warning: warn is PASS with misc.kseries_status
"warn" and a comment starting "warning:". A build with only new warnings compiled: it is
PASS, and its build.new_warnings test is FAIL. Every object keeps misc.kseries_status.

log_url and the other URLs must be absolute URIs: with --target-url they are TARGET_URL/
<path relative to the report dir>, else file: URLs of the local paths.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kseries.core.errors import KseriesError
from kseries.export import ExportSettings
from kseries.export.common import (
    Item,
    Json,
    data_of,
    items,
    log_url,
    one_line,
    safe,
    stage,
    stages,
    status_of,
)
from kseries.export.patches import SeriesInfo, series_info

VERSION = {"major": 5, "minor": 3}
FILE_NAME = "kcidb.json"
ORIGIN_RE = re.compile(r"^[a-z0-9_]+$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
STATUS = {"pass": "PASS", "warn": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}
EXCERPT_MAX = 16384
GUEST_RE = re.compile(r"^(?:[\w-]+: )?(series|base) guest(?: \((.+)\))?$")
SERIES = "series"


@dataclass(frozen=True)
class Run:
    """What one report becomes, gathered stage by stage."""

    report: Json
    settings: ExportSettings
    info: SeriesInfo
    series_id: str
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    tests: list[dict[str, Any]] = field(default_factory=list)
    test_ids: dict[str, int] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.settings.origin

    def checkout_id(self, source: str) -> str:
        return self.series_id if source == SERIES else f"{self.series_id}:{source}"

    def source_of(self, step: str | None) -> str:
        """Which checkout a step ran on: the base, patch N of the series, or all of it."""
        if step == "base":
            return "base"
        found = re.match(r"^patch[ -](\d+)$", step or "")
        if found and int(found.group(1)) < len(self.info.patches):
            return f"patch-{found.group(1)}"
        return SERIES

    def build(self, kind: str, arch: str | None, step: str, **fields: Any) -> str:
        """The id of build KIND/ARCH/STEP, made on first use; FIELDS fill it in."""
        build_id = f"{self.series_id}:{kind}:{arch or 'all'}:{step}"
        entry = self.builds.setdefault(build_id, {
            "id": build_id, "origin": self.origin,
            "checkout_id": self.checkout_id(self.source_of(step)),
            **({"architecture": safe(arch).lower()} if arch else {})})
        entry.update(clean(fields))
        return build_id

    def source_build(self) -> str:
        return self.build("source", None, SERIES, comment="no compilation: checks of the "
                          "series' patches and sources", misc={"kind": "source"})

    def test(self, build_id: str, path: str, item: Item, **fields: Any) -> None:
        base = f"{build_id}:{path}"
        count = self.test_ids.get(base, 0) + 1
        self.test_ids[base] = count
        self.tests.append(clean({
            "id": base if count == 1 else f"{base}:{count}", "origin": self.origin,
            "build_id": build_id, "path": path, **outcome(item),
            "duration": item.duration, "log_url": log_url(self.settings, item.check.get("log")),
            "misc": clean({"kseries_status": item.status, "name": item.name,
                           "stage": item.stage, "rule": item.rule, "step": item.step,
                           "arch": item.arch, "reproducer": item.check.get("reproducer")}),
            **fields}))


def clean(entry: Mapping[str, Any]) -> dict[str, Any]:
    """ENTRY without None values: KCIDB has no nulls, a missing property is 'unknown'."""
    return {k: v for k, v in entry.items() if v is not None}


def outcome(item: Item) -> dict[str, Any]:
    summary = item.summary
    comment = f"warning: {summary}" if item.status == "warn" else summary
    return {"status": STATUS[item.status], "comment": one_line(comment, 1000) or None}


def dotted(name: str) -> str:
    """NAME with its dots kept as KCIDB path separators, every part made safe."""
    return ".".join(safe(part) for part in name.split(".") if part) or "unnamed"


# --- checkouts ----------------------------------------------------------------------------


def patchset(files: tuple[Path, ...] | None, count: int, run: Run) -> dict[str, Any]:
    """patchset_files and patchset_hash of the first COUNT patches, when all are on disk."""
    if count == 0:
        return {"patchset_hash": ""}
    if files is None:
        return {}  # the applied patch files are gone: no hash rather than a made-up one
    chosen = files[:count]
    digests = "".join(hashlib.sha256(p.read_bytes()).hexdigest() + "\n" for p in chosen)
    return {"patchset_hash": hashlib.sha256(digests.encode()).hexdigest(),
            "patchset_files": [{"name": p.name, "url": log_url(run.settings, str(p))}
                               for p in chosen]}


def checkouts(run: Run) -> list[dict[str, Any]]:
    report, info = run.report, run.info
    base = str(report.get("base") or "")
    used = {b["checkout_id"] for b in run.builds.values()} | {run.series_id}
    tree = stage(report, "tree")
    tree_data = tree.get("data") if tree is not None else None
    version = tree_data.get("version") if isinstance(tree_data, Mapping) else None
    apply = stage(report, "apply")
    valid = status_of(apply) in ("pass", "warn") if apply is not None else None
    common = clean({
        "origin": run.origin,
        "tree_name": "debian-linux-source" if report.get("tree") == "default" else None,
        "git_commit_hash": base if SHA1_RE.match(base) else None,
        "git_commit_name": version if isinstance(version, str) else None,
        "start_time": report.get("started")})
    result = []
    total = len(info.patches)
    for count in range(total + 1):
        source = "base" if count == 0 else SERIES if count == total else f"patch-{count}"
        checkout_id = run.checkout_id(source)
        if checkout_id not in used:
            continue
        entry = {"id": checkout_id, **common, **patchset(info.files, count, run),
                 "valid": True if count < total else valid,
                 "misc": {"series": report.get("series"), "revision": report.get("revision"),
                          "patches": count, "kseries_version": report.get("kseries_version")}}
        if source == SERIES:
            entry.update(series_fields(run, apply))
        result.append(clean(entry))
    return result


def series_fields(run: Run, apply: Json | None) -> dict[str, Any]:
    report, info = run.report, run.info
    message_id = info.cover_message_id or (info.patches[0].message_id if info.patches
                                           else None)
    ended = report.get("ended") if not report.get("interrupted") else None
    misc = {"series": report.get("series"), "revision": report.get("revision"),
            "head": report.get("head"), "status": report.get("status"),
            "exit_code": report.get("exit_code"), "patches": len(info.patches),
            "kseries_version": report.get("kseries_version"),
            "message_ids": [p.message_id for p in info.patches if p.message_id]}
    failed = apply is not None and status_of(apply) in ("fail", "error")
    return clean({
        "message_id": message_id,
        "comment": info.cover_subject or f"{report.get('series')} {report.get('revision')}",
        "origin_builds_finish_time": ended, "origin_tests_finish_time": ended,
        "log_excerpt": str(apply.get("summary"))[:EXCERPT_MAX] if failed and apply else None,
        "misc": clean(misc)})


# --- stages -------------------------------------------------------------------------------


def build_stage(run: Run, entry: Json) -> None:
    data = data_of(entry)
    arches: Mapping[str, Any] = data.get("arches") or {}
    configs = {i.arch: i for i in items(entry) if i.step == "config" and i.arch is not None}
    for item in items(entry):
        arch, step = arch_step(item, arches)
        if item.check is entry:
            run.test(run.source_build(), "build", item)
        elif arch is None or step is None:
            run.test(run.source_build(), f"build.{safe(item.name)}", item)
        elif step in ("config", "sparse"):
            run.test(arch_build(run, arch, head_step(arches, arch), arches, configs),
                     f"build.{step}", item)
        else:
            step_build(run, item, arch, step, arches, configs)


def arch_step(item: Item, arches: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """ARCH and STEP of a build check; an older report left them out of a passing base
    check, whose name still says '<arch> base'."""
    if item.arch and item.step:
        return item.arch, item.step
    first, _, rest = item.name.partition(" ")
    return (first, rest) if first in arches and rest else (item.arch, item.step)


def head_step(arches: Mapping[str, Any], arch: str) -> str:
    steps = arches.get(arch, {}).get("steps") or []
    return str(steps[-1].get("step")) if steps else "head"


def arch_build(run: Run, arch: str, step: str, arches: Mapping[str, Any],
               configs: Mapping[str, Item], **fields: Any) -> str:
    info = arches.get(arch, {})
    config = configs.get(arch)
    fragments = [Path(str(f)).name for f in (config.data.get("fragments") or [])] \
        if config is not None else []
    defconfig = info.get("defconfig") or (config.data.get("defconfig") if config else None)
    name = "+".join([str(defconfig), *fragments]) if defconfig else None
    return run.build("build", arch, step, compiler=info.get("toolchain"), config_name=name,
                     config_url=log_url(run.settings, info.get("config")), **fields)


def step_build(run: Run, item: Item, arch: str, step: str, arches: Mapping[str, Any],
               configs: Mapping[str, Item]) -> None:
    data = item.data
    lines = [str(x) for x in (data.get("errors") or data.get("new_warnings") or [])]
    new_warning = item.rule == "new-warning"
    status = "PASS" if new_warning else STATUS[item.status]
    build_id = arch_build(
        run, arch, step, arches, configs, status=status, duration=item.duration,
        log_url=log_url(run.settings, item.check.get("log")),
        command=item.check.get("reproducer"), comment=outcome(item)["comment"],
        log_excerpt="\n".join(lines)[:EXCERPT_MAX] or None,
        misc=clean({"kseries_status": item.status, "rule": item.rule, "step": step,
                    "commit": data.get("commit"), "objects": len(data.get("objects") or []),
                    "failed": data.get("failed"), "reused": data.get("reused")}))
    if step != "base" and ("new_warnings" in data or new_warning):
        # The step's own status when warnings are what it is about; no verdict on the
        # warnings of a build that broke; else none new.
        broke = item.rule == "build-breaks"
        verdict = STATUS[item.status] if new_warning else "SKIP" if broke else "PASS"
        comment = outcome(item)["comment"] if new_warning else (
            "the build broke: no verdict on its warnings" if broke else
            "no new warnings against the base")
        new = "\n".join(str(x) for x in data.get("new_warnings") or [])
        run.test(build_id, "build.new_warnings", item, status=verdict, comment=comment,
                 log_excerpt=new[:EXCERPT_MAX] or None)


def kunit_stage(run: Run, entry: Json) -> None:
    data = data_of(entry)
    for r in data.get("runs") or []:
        variant = str(r.get("variant"))
        step = f"patch-{r.get('patch')}" if variant == "commit" else variant
        failed = {"build-failed": "FAIL", "config-failed": "FAIL", "unavailable": "SKIP",
                  "same-as-before": "SKIP"}
        run.build("kunit", str(r.get("arch")), step, config_name="kunit",
                  status=failed.get(str(r.get("outcome")), "PASS"),
                  duration=r.get("build_s"), command=r.get("command") or None,
                  log_url=log_url(run.settings, r.get("log")),
                  comment=one_line(str(r.get("summary") or ""), 1000) or None,
                  misc=clean({"outcome": r.get("outcome"), "accel": r.get("accel") or None,
                              "exec_s": r.get("exec_s")}))
    for item in items(entry):
        step = "series" if item.step in (None, "every-commit") else item.step
        build_id = run.build("kunit", item.arch, step, config_name="kunit")
        if item.rule == "kunit-case":
            path = "kunit." + dotted(item.name.split(": ", 1)[-1])
        else:
            path = "kunit" if item.name == item.stage else f"kunit.{safe(item.rule or item.name)}"
        run.test(build_id, path, item)


def vmtest_stage(run: Run, entry: Json) -> None:
    data = data_of(entry)
    per_arch = data.get("arches") or ({data["arch"]: data} if data.get("arch") else {})
    for arch, arch_data in per_arch.items():
        for label, kernel in (arch_data.get("kernels") or {}).items():
            run.build("vmtest", str(arch), str(label), config_name="vmtest",
                      config_url=log_url(run.settings, kernel.get("config")), status="PASS",
                      command=kernel.get("build"), misc=clean({"cached": kernel.get("cached"),
                                                               "commit": kernel.get("commit")}))
    built = {(str(a), str(label)) for a, d in per_arch.items() for label in d.get("kernels") or {}}
    for item in items(entry):
        arch = item.arch or str(data.get("arch") or "all")
        path, label = vm_path(item, arch)
        # An arch without a guest kernel (no virtio-mem there, no QEMU): a build not done.
        not_built = (arch, label) not in built and item.status == "skip"
        build_id = run.build("vmtest", arch, label, config_name="vmtest",
                             status="SKIP" if not_built else None,
                             comment=one_line(item.summary, 1000) if not_built else None)
        if path.endswith(".kernel_config") and item.status == "fail":
            run.builds[build_id]["status"] = "FAIL"
        run.test(build_id, path, item)


def vm_path(item: Item, arch: str) -> tuple[str, str]:
    """The KCIDB path of a vmtest check and the kernel (series, base, patch-N) it ran."""
    name = item.name
    if (guest := GUEST_RE.match(name)) is not None:
        return f"vmtest.{safe(arch)}.guest.{safe(guest.group(2) or 'kexec')}", guest.group(1)
    if name == f"{arch} guest":
        return f"vmtest.{safe(arch)}.guest", SERIES
    if name in ("base kernel", "base kernel config"):
        return f"vmtest.{safe(arch)}.{safe(name.removeprefix('base '))}", "base"
    if name == "series kernel config":
        return f"vmtest.{safe(arch)}.kernel_config", SERIES
    label = f"patch-{item.patch}" if item.patch is not None else SERIES
    if name.startswith(f"{arch}."):
        return f"vmtest.{dotted(name)}", label
    return ("vmtest" if name == item.stage else f"vmtest.{safe(arch)}.{safe(name)}"), label


def other_stage(run: Run, entry: Json) -> None:
    """apply, checks, callers and any other stage: tests on the series' sources."""
    for item in items(entry):
        prefix = safe(item.stage)
        if item.name == item.stage and item.check is entry:
            path = prefix
        elif item.stage == "checks" and item.patch is not None:
            path = f"checks.patch{item.patch}.{safe(item.rule or item.name)}"
        elif item.stage == "checks":
            where = f".{safe(item.step)}" if item.step and item.step != "series" else ""
            path = f"checks.{safe(item.rule or item.name)}{where}"
        else:
            path = f"{prefix}.{safe(item.name)}"
        run.test(run.source_build(), path, item)


STAGES = {"build": build_stage, "kunit": kunit_stage, "vmtest": vmtest_stage}


def document(report: Json, settings: ExportSettings) -> dict[str, Any]:
    """The KCIDB I/O data of REPORT."""
    if not ORIGIN_RE.match(settings.origin):
        raise KseriesError(f"KCIDB origin {settings.origin!r} is not [a-z0-9_]+; pass "
                         "--origin NAME with lower-case letters, digits and _ only")
    head = str(report.get("head") or "unknown")
    series_id = (f"{settings.origin}:{report.get('series')}:{report.get('revision')}:"
                 f"{head}")
    run = Run(report, settings, series_info(report, settings), series_id)
    for entry in stages(report):
        STAGES.get(str(entry.get("name")), other_stage)(run, entry)
    return {"version": VERSION, "checkouts": checkouts(run),
            "builds": list(run.builds.values()), "tests": run.tests}


def write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    path = out / FILE_NAME
    path.write_text(json.dumps(document(report, settings), indent=2) + "\n")
    return [path]
