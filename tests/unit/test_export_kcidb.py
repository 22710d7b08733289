"""KCIDB export: valid for kcidb-io's own validator, and what each object says."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kcidb_io import schema

from kseries.core.errors import KseriesError
from kseries.export import kcidb
from tests.export_data import COVER_ID, Laid, golden_report, message_id, patch_text, rich_report


def export(laid: Laid, tmp_path: Path, **settings: Any) -> dict[str, Any]:
    [path] = kcidb.write(laid.report, tmp_path / "export", laid.settings(**settings))
    assert path.name == "kcidb.json"
    data: dict[str, Any] = json.loads(path.read_text())
    schema.V5_3.validate_exactly(data)  # the version we claim, exactly
    schema.LATEST.validate(data)  # and what the current kcidb-io takes
    return data


def by_path(data: dict[str, Any], path: str) -> list[dict[str, Any]]:
    return [t for t in data["tests"] if t["path"] == path]


def build(data: dict[str, Any], suffix: str) -> dict[str, Any]:
    [found] = [b for b in data["builds"] if b["id"].endswith(suffix)]
    return found


def test_golden_report_is_valid_kcidb(tmp_path: Path) -> None:
    data = export(golden_report(), tmp_path)
    assert data["version"] == {"major": 5, "minor": 3}
    [checkout] = data["checkouts"]
    assert checkout["id"] == "kseries:mhp-driver-managed:v2:" + "h" * 40
    assert checkout["git_commit_hash"] == "b" * 40 and checkout["valid"] is True
    assert "patchset_hash" not in checkout  # no patch files to hash: left out, not made up
    head = build(data, ":build:x86_64:head")
    assert head["status"] == "PASS" and head["misc"]["kseries_status"] == "warn"
    assert head["comment"].startswith("warning: ")
    [warnings] = by_path(data, "build.new_warnings")
    assert warnings["status"] == "PASS" and warnings["misc"]["kseries_status"] == "warn"


def test_checkouts_carry_base_patchset_hash_and_message_id(tmp_path: Path) -> None:
    laid = rich_report(tmp_path)
    data = export(laid, tmp_path, target_url="https://ci.example.org/r/7/")
    checkouts = {c["id"].rsplit(":", 1)[-1]: c for c in data["checkouts"]}
    series = checkouts["3c" * 20]
    digests = "".join(hashlib.sha256(patch_text(i).encode()).hexdigest() + "\n"
                      for i in (1, 2, 3))
    assert series["patchset_hash"] == hashlib.sha256(digests.encode()).hexdigest()
    assert [f["url"] for f in series["patchset_files"]] == [
        f"https://ci.example.org/r/7/logs/checks/patch-{i}.patch" for i in (1, 2, 3)]
    assert series["message_id"] == COVER_ID
    assert series["misc"]["message_ids"] == [message_id(i) for i in (1, 2, 3)]
    assert series["git_commit_hash"] == "8b02695b2f70b85fb5d4c0e561d1cee328851436"
    assert series["tree_name"] == "debian-linux-source"
    assert series["valid"] is True and series["start_time"] == "2026-11-30T09:12:04Z"
    assert checkouts["base"]["patchset_hash"] == ""
    assert len(checkouts["patch-2"]["patchset_files"]) == 2  # the bisect step at patch 2


def test_without_the_patch_files_no_hash_is_claimed(tmp_path: Path) -> None:
    data = export(rich_report(tmp_path, with_files=False), tmp_path)
    series = next(c for c in data["checkouts"] if c["id"].endswith("3c" * 20))
    assert "patchset_hash" not in series and "patchset_files" not in series
    assert "message_id" not in series


def test_builds_per_arch_and_step(tmp_path: Path) -> None:
    data = export(rich_report(tmp_path), tmp_path)
    s390 = build(data, ":build:s390:patch-2")
    assert s390["architecture"] == "s390"
    assert s390["compiler"] == "s390x-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"
    assert s390["config_name"] == "defconfig+mhp.config"
    assert s390["status"] == "PASS"  # it compiled; the new warning is its test's failure
    assert s390["checkout_id"].endswith(":patch-2")
    assert "may be used uninitialized" in s390["log_excerpt"]
    assert s390["log_url"].startswith("file://") and s390["log_url"].endswith(
        "/out/build/s390/patch-2.log")
    warned = [t for t in by_path(data, "build.new_warnings") if t["build_id"] == s390["id"]]
    assert [t["status"] for t in warned] == ["FAIL"]
    base = build(data, ":build:x86_64:base")  # a passing base check names no arch/step
    assert base["status"] == "PASS" and base["checkout_id"].endswith(":base")
    assert build(data, ":build:arm64:patch-3")["checkout_id"].endswith("3c" * 20)
    [sparse] = by_path(data, "build.sparse")
    assert sparse["build_id"].endswith(":build:x86_64:patch-3")


def test_tests_have_dotted_paths_and_mapped_statuses(tmp_path: Path) -> None:
    data = export(rich_report(tmp_path), tmp_path)
    statuses = {(t["path"], t["build_id"].split(":", 4)[-1]): t["status"]
                for t in data["tests"]}
    suite = "kunit.memory_hotplug_driver_managed"
    assert statuses[(f"{suite}.kexec_skips_driver_managed", "kunit:arm64:series")] == "FAIL"
    assert statuses[(f"{suite}.kdump_includes_driver_managed", "kunit:x86_64:series")] == "SKIP"
    assert statuses[("kunit.suite-bites", "kunit:x86_64:base")] == "PASS"
    assert statuses[("vmtest.x86_64.boot.memmap_excludes_virtio_mem",
                     "vmtest:x86_64:series")] == "PASS"
    assert statuses[("vmtest.x86_64.guest.kexec", "vmtest:x86_64:base")] == "PASS"
    assert statuses[("vmtest.arm64.guest.kexec", "vmtest:arm64:series")] == "PASS"
    assert statuses[("vmtest.powerpc.guest", "vmtest:powerpc:series")] == "SKIP"
    assert statuses[("checks.patch3.maintainers", "source:all:series")] == "FAIL"
    assert statuses[("callers.call_drivers_dax_kmem_c_107", "source:all:series")] == "PASS"
    assert statuses[("revisions", "source:all:series")] == "ERROR"
    [dmesg] = by_path(data, "vmtest.x86_64.shrink.dmesg_clean")
    assert dmesg["status"] == "PASS" and dmesg["misc"]["kseries_status"] == "warn"
    assert dmesg["comment"].startswith("warning: skipped: unplug")
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"])
    assert build(data, ":kunit:x86_64:base")["status"] == "FAIL"  # the suite did not build
    assert build(data, ":kunit:s390:series")["status"] == "SKIP"
    assert build(data, ":vmtest:powerpc:series")["status"] == "SKIP"


def test_origin_is_configurable_and_checked(tmp_path: Path) -> None:
    data = export(golden_report(), tmp_path, origin="my_lab")
    assert {o["origin"] for key in ("checkouts", "builds", "tests") for o in data[key]} == {
        "my_lab"}
    assert all(t["id"].startswith("my_lab:") for t in data["tests"])
    with pytest.raises(KseriesError, match="--origin"):
        kcidb.write(golden_report().report, tmp_path / "bad",
                    golden_report().settings(origin="My-Lab"))


def test_the_validator_catches_a_broken_document(tmp_path: Path) -> None:
    """The validation above can fail: a warn status is not KCIDB's."""
    data = export(golden_report(), tmp_path)
    data["tests"][0]["status"] = "WARN"
    with pytest.raises(jsonschema.ValidationError):
        schema.V5_3.validate_exactly(data)


def test_log_urls_are_absolute_uris(tmp_path: Path) -> None:
    laid = golden_report()
    laid.report["stages"][1]["checks"][0]["log"] = "logs/x86 64/head.log"  # relative, a space
    served = build(export(laid, tmp_path, target_url="https://ci.example.org/r/"),
                   ":build:x86_64:head")
    assert served["log_url"] == "https://ci.example.org/r/logs/x86%2064/head.log"
    local = build(export(laid, tmp_path / "local"), ":build:x86_64:head")
    assert local["log_url"] == (laid.report_dir / "logs" / "x86 64" / "head.log").as_uri()
