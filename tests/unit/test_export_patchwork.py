"""Patchwork export: one file per patch with POST bodies and pwclient lines, and an index."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from kseries.export import patchwork
from tests.export_data import Laid, golden_report, message_id, rich_report

STATES = {"pending", "success", "warning", "fail"}
SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")  # Django's SlugField


def export(laid: Laid, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    paths = patchwork.write(laid.report, tmp_path / "export", laid.settings(**settings))
    assert all(p.parent == tmp_path / "export" / "patchwork" for p in paths)
    return {p.name: json.loads(p.read_text()) for p in paths}


def contexts(patch_file: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["body"]["context"]: c for c in patch_file["checks"]}


def test_bodies_are_what_patchwork_takes(tmp_path: Path) -> None:
    files = export(rich_report(tmp_path), tmp_path, target_url="https://ci.example.org/7")
    assert sorted(files) == ["index.json", "patch-1.json", "patch-2.json", "patch-3.json"]
    for name in ("patch-1.json", "patch-2.json", "patch-3.json"):
        for check in files[name]["checks"]:
            body = check["body"]
            assert set(body) == {"context", "state", "target_url", "description"}
            assert body["state"] in STATES and SLUG.match(body["context"])
            assert len(body["description"]) <= 255 and "\n" not in body["description"]
            assert body["target_url"].startswith("https://ci.example.org/7")


def test_each_patch_gets_its_own_results(tmp_path: Path) -> None:
    files = export(rich_report(tmp_path), tmp_path, target_url="https://ci.example.org/7/")
    second = contexts(files["patch-2.json"])
    assert second["kseries-checkpatch"]["body"]["state"] == "warning"
    assert second["kseries-build"]["body"] == {
        "context": "kseries-build", "state": "fail",
        "target_url": "https://ci.example.org/7/build/s390/patch-2.log",
        "description": "s390 patch-2: patch 2/3 'virtio-mem: add memory as driver-managed "
                       "with MHP_DRIVER_MANAGED': 1 new warning(s) on s390"}
    assert second["kseries-build"]["checks"] == ["x86_64 patch-2", "arm64 patch-2",
                                                 "s390 patch-2"]
    assert contexts(files["patch-1.json"])["kseries-build"]["body"]["state"] == "warning"
    third = contexts(files["patch-3.json"])
    assert third["kseries-maintainers"]["body"]["state"] == "fail"
    assert second["kseries-maintainers"]["body"]["state"] == "success"
    # series-level results go on every patch, like NIPA posts them
    for name in ("patch-1.json", "patch-3.json"):
        found = contexts(files[name])
        assert found["kseries-kunit"]["body"]["state"] == "fail"
        assert found["kseries-revisions"]["body"]["description"].startswith("error: ")
        assert found["kseries-build-series"]["body"]["state"] == "warning"


def test_pwclient_line_finds_the_patch_by_message_id(tmp_path: Path) -> None:
    files = export(rich_report(tmp_path), tmp_path)
    first = files["patch-1.json"]
    assert first["patch"]["message_id"] == message_id(1)
    line = contexts(first)["kseries-signoff"]["pwclient"]
    command, lookup = line.split(' "$(')
    assert shlex.split(command) == [
        "pwclient", "check-create", "-c", "kseries-signoff", "-s", "success", "-d",
        "signed off by the author David Example <david@example.org>"]
    assert shlex.split(lookup.removesuffix(')"')) == [
        "pwclient", "list", "-m", message_id(1), "-f", "%{id}"]
    assert "target_url" not in contexts(first)["kseries-signoff"]["body"]


def test_skips_are_not_posted_and_the_index_lists_states(tmp_path: Path) -> None:
    laid = golden_report()
    files = export(laid, tmp_path)
    [patch] = files["index.json"]["patches"]
    assert patch["index"] == 1 and patch["subject"] == "mm: one" and patch["commit"] == "abc"
    assert patch["states"] == {"kseries-apply": "success", "kseries-build": "warning"}
    line = files["patch-1.json"]["checks"][0]["pwclient"]
    assert line.endswith(" PATCH_ID")  # no thread to read a Message-ID from
    rich = export(rich_report(tmp_path / "rich"), tmp_path / "rich")
    assert "kseries-tree" in contexts(rich["patch-1.json"])
    laid.report["stages"][1]["checks"][0]["status"] = "skip"
    skipped = export(laid, tmp_path / "skip")["patch-1.json"]
    assert [s["context"] for s in skipped["not_posted"]] == ["kseries-build"]
    assert "kseries-build" not in contexts(skipped)
