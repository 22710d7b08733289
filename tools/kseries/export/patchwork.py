"""Patchwork checks (patchwork/patch-N.json and patchwork/index.json), ready to post.

Patchwork keeps per-patch checks: context (a slug, unique per CI system and test), state
(pending, success, warning, fail), target_url (an http(s) URL) and a brief description
(POST /api/patches/{id}/checks/, or `pwclient check-create`). Nothing is posted here: each
patch's file holds, per context, the POST body ("body") and the pwclient command line
("pwclient"); patchwork's patch id is looked up from the patch's Message-ID with
`pwclient list -m MSGID -f %{id}` (PATCH_ID when the report's thread is not there to give
the Message-ID).

Contexts: kseries-<rule> for the checks stage (kseries-checkpatch, kseries-signoff, ...),
kseries-<stage> for the others. A context holds a patch's own checks (step "patch N": the
apply, checkpatch, bisect build, per-commit guest run of that patch); a stage's series-level
checks are posted on every patch, like NIPA does, as kseries-<stage> or, when the stage also
has per-patch checks, kseries-<stage>-series. State: pass success, warn warning, fail and
error fail (the description says "error:"); a context whose checks were all skipped is not
posted (patchwork has no skip) and is listed under "not_posted". Descriptions are one line
of at most 255 characters (patchwork stores more, but shows them inline).
"""

from __future__ import annotations

import json
import shlex
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
    under_target,
    worst,
)
from kseries.export.patches import PatchInfo, series_info

DIR_NAME = "patchwork"
STATE = {"pass": "success", "warn": "warning", "fail": "fail", "error": "fail"}
DESCRIPTION_MAX = 255


@dataclass(frozen=True)
class Group:
    """The checks one patchwork check stands for."""

    context: str
    checks: tuple[Item, ...]

    @property
    def status(self) -> str:
        return worst([i.status for i in self.checks])


def contexts(entry: Json, patch: int) -> list[Group]:
    """The groups of stage ENTRY for patch PATCH: its own checks and the series-level ones."""
    found = items(entry)
    name = safe(str(entry.get("name") or "stage")).lower()
    by_rule = name == "checks"

    def key(item: Item) -> str:
        return f"kseries-{safe(item.rule or item.name).lower()}" if by_rule else f"kseries-{name}"

    per_patch = any(i.patch is not None for i in found)
    groups: dict[str, list[Item]] = {}
    for item in found:
        if item.patch == patch:
            groups.setdefault(key(item), []).append(item)
        elif item.patch is None:
            series_key = key(item) if by_rule or not per_patch else f"kseries-{name}-series"
            groups.setdefault(series_key, []).append(item)
    return [Group(context, tuple(checks)) for context, checks in groups.items()]


def description(group: Group) -> str:
    status = group.status
    chosen = [i for i in group.checks if i.status == status]
    if status == "pass" and len(group.checks) > 1:
        skipped = len(group.checks) - len(chosen)
        text = f"{len(chosen)} checks passed" + (f", {skipped} skipped" if skipped else "")
    else:
        more = f" (+{len(chosen) - 1} more)" if len(chosen) > 1 else ""
        text = f"{chosen[0].name}: {chosen[0].summary}{more}" if len(group.checks) > 1 \
            else chosen[0].summary
    return one_line(f"error: {text}" if status == "error" else text, DESCRIPTION_MAX)


def target(group: Group, settings: ExportSettings) -> str | None:
    """TARGET_URL/<the log of the first check that set the state>, or TARGET_URL."""
    if not settings.target_url:
        return None
    base = settings.target_url.rstrip("/")
    first = next(i for i in group.checks if i.status == group.status)
    log = relative_log(settings, first.check.get("log"))
    return under_target(base, log) if log and not Path(log).is_absolute() else base


def pwclient(body: Mapping[str, Any], patch: PatchInfo) -> str:
    args = ["pwclient", "check-create", "-c", body["context"], "-s", body["state"]]
    if body.get("target_url"):
        args += ["-u", body["target_url"]]
    args += ["-d", body["description"]]
    command = shlex.join(args)
    if patch.message_id:
        lookup = shlex.join(["pwclient", "list", "-m", patch.message_id, "-f", "%{id}"])
        return f'{command} "$({lookup})"'
    return f"{command} PATCH_ID"


def patch_checks(report: Json, patch: PatchInfo, settings: ExportSettings) -> dict[str, Any]:
    posted: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for entry in stages(report):
        for group in contexts(entry, patch.index):
            names = [i.name for i in group.checks]
            if group.status not in STATE:
                skipped.append({"context": group.context, "reason": "every check skipped: "
                                + one_line(group.checks[0].summary, 200), "checks": names})
                continue
            body = {"context": group.context, "state": STATE[group.status],
                    "target_url": target(group, settings), "description": description(group)}
            body = {k: v for k, v in body.items() if v is not None}
            posted.append({"body": body, "pwclient": pwclient(body, patch),
                           "kseries_status": group.status, "checks": names})
    return {"patch": patch_identity(patch), "checks": posted, "not_posted": skipped}


def patch_identity(patch: PatchInfo) -> dict[str, Any]:
    return {"index": patch.index, "subject": patch.subject, "commit": patch.commit,
            "message_id": patch.message_id}


def write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]:
    folder = out / DIR_NAME
    folder.mkdir(parents=True, exist_ok=True)
    info = series_info(report, settings)
    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for patch in info.patches:
        data = patch_checks(report, patch, settings)
        path = folder / f"patch-{patch.index}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        written.append(path)
        index.append({**patch_identity(patch), "file": path.name,
                      "states": {c["body"]["context"]: c["body"]["state"]
                                 for c in data["checks"]}})
    summary = {"series": report.get("series"), "revision": report.get("revision"),
               "head": report.get("head"), "cover_message_id": info.cover_message_id,
               "patches": index}
    path = folder / "index.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return [*written, path]
