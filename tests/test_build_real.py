"""kseries build on the real 6.12 tree with real cross compilers: the detectors on real code.

The fixture series (tests/fixtures/build-*.mbx, made with git format-patch on the imported
tree) add a warning, swap a W=1 warning for another, and break only s390. All runs share the
per-arch build dirs and ccache of the default cache, as `kseries build` does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kseries.tree import Tree
from tests.conftest import FIXTURES, ROOT, CliResult, git, run_cli, snapshot

pytestmark = pytest.mark.realtree


def build(out: Path, *args: str | Path) -> CliResult:
    result = run_cli("build", *args, "--out", out)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def build_stage(out: Path) -> dict[str, Any]:
    report = json.loads((out / "report.json").read_text())
    return next(s for s in report["stages"] if s["name"] == "build")


def check(stage: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in stage["checks"] if c["name"] == name)


def test_new_warning_is_caught_and_printed_0day_style(real_tree: Tree, tmp_path: Path) -> None:
    result = build(tmp_path, "--mbox", FIXTURES / "build-new-warning.mbx", "--arch", "x86_64",
                   "--no-sparse")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "All warnings (new ones prefixed by >>):" in result.stdout
    new_line = [line for line in result.stdout.splitlines() if line.strip().startswith(">>")]
    assert len(new_line) == 1
    assert "mm/memory_hotplug.c:329:" in new_line[0]
    assert "warning: unused variable 'max_align' [-Wunused-variable]" in new_line[0]
    stage = build_stage(tmp_path)
    assert stage["status"] == "fail"
    step = check(stage, "x86_64 patch-1")
    assert step["status"] == "fail" and "1 new warning" in step["summary"]
    assert "mm/memory_hotplug.o" in step["reproducer"]
    assert check(stage, "x86_64 base")["status"] == "pass"
    assert stage["data"]["coverage"]["mm/memory_hotplug.c"]["x86_64"]["status"] == "built"


def test_second_run_reuses_results_and_still_reports_the_warning(real_tree: Tree,
                                                                   tmp_path: Path) -> None:
    mbox = FIXTURES / "build-new-warning.mbx"
    build(tmp_path / "first", "--mbox", mbox, "--arch", "x86_64", "--no-sparse")
    result = build(tmp_path / "second", "--mbox", mbox, "--arch", "x86_64", "--no-sparse")
    assert result.returncode == 1, result.stdout + result.stderr
    step = check(build_stage(tmp_path / "second"), "x86_64 patch-1")
    assert step["data"]["reused"] == ["mm/memory_hotplug.o"]
    assert step["status"] == "fail" and "1 new warning" in step["summary"]
    assert any("unused variable 'max_align'" in line for line in step["data"]["new_warnings"])


def test_swapped_warning_is_still_caught(real_tree: Tree, tmp_path: Path) -> None:
    result = build(tmp_path, "--mbox", FIXTURES / "build-swap-warning.mbx", "--arch", "x86_64",
                   "--no-sparse")
    assert result.returncode == 1, result.stdout + result.stderr
    stage = build_stage(tmp_path)
    base, step = check(stage, "x86_64 base"), check(stage, "x86_64 patch-1")
    assert len(base["data"]["warnings"]) == len(step["data"]["warnings"]) == 2
    new = [line for line in step["data"]["new_warnings"] if line.startswith(">>")]
    assert len(new) == 1
    assert "kernel/reboot.c" in new[0]
    assert "'work' not described in 'hw_failure_emergency_poweroff_func'" in new[0]
    [fixed] = step["data"]["fixed_warnings"]
    assert "'cmd' not described in 'do_kernel_restart'" in fixed


def test_break_on_s390_only_is_caught_by_the_s390_build(real_tree: Tree, tmp_path: Path) -> None:
    result = build(tmp_path, "--mbox", FIXTURES / "build-s390-break.mbx", "--arch", "x86_64",
                   "--arch", "s390")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: too few arguments to function 'add_memory'" in result.stdout
    reproduce = [line.strip() for line in result.stdout.splitlines()
                 if "reproduce:" in line and "ARCH=s390" in line]
    assert reproduce and reproduce[0].endswith("drivers/s390/char/sclp_cmd.o")
    stage = build_stage(tmp_path)
    broken = check(stage, "s390 patch-2")
    assert broken["status"] == "fail"
    assert broken["data"]["failed"] == ["drivers/s390/char/sclp_cmd.o"]
    assert "patch 2/2 'mm/memory_hotplug: Let add_memory() callers name the range' breaks " \
           "the build on s390" in broken["summary"]
    assert check(stage, "s390 patch-1")["status"] == "pass"
    assert check(stage, "x86_64 patch-2")["status"] == "pass"
    bisect = check(stage, "bisect")
    assert bisect["status"] == "fail"
    assert bisect["data"]["first_bad"] == {"s390": "patch 2/2 'mm/memory_hotplug: Let "
                                                   "add_memory() callers name the range'"}
    coverage = stage["data"]["coverage"]
    assert coverage["drivers/s390/char/sclp_cmd.c"]["s390"]["status"] == "failed"
    assert coverage["drivers/s390/char/sclp_cmd.c"]["x86_64"] == {
        "status": "not-buildable", "reason": "CONFIG_S390 does not exist for ARCH=x86"}
    assert coverage["drivers/hv/hv_balloon.c"]["x86_64"]["status"] == "built"
    assert coverage["drivers/hv/hv_balloon.c"]["s390"]["status"] == "not-buildable"
    worktree = Path(stage["data"]["worktree"])
    assert git(worktree, "rev-parse", "HEAD") == stage["data"]["head"]


@pytest.mark.skipif(not (ROOT / "patches" / "v2.mbx").is_file(), reason="patches/v2.mbx missing")
def test_series_builds_everywhere_bisectable_without_new_warnings(real_tree: Tree,
                                                                  tmp_path: Path) -> None:
    result = build(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    stage = build_stage(tmp_path)
    assert stage["status"] == "pass", stage["summary"]
    coverage = stage["data"]["coverage"]
    expected = {"mm/memory_hotplug.c", "drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c",
                "drivers/acpi/acpi_memhotplug.c", "drivers/base/memory.c",
                "drivers/hv/hv_balloon.c", "drivers/xen/balloon.c",
                "drivers/s390/char/sclp_cmd.c", "arch/powerpc/platforms/pseries/hotplug-memory.c"}
    assert expected <= set(coverage)
    for path, row in coverage.items():
        assert any(cell["status"] == "built" for cell in row.values()), (path, row)
    assert coverage["drivers/s390/char/sclp_cmd.c"]["s390"]["status"] == "built"
    assert coverage["arch/powerpc/platforms/pseries/hotplug-memory.c"]["powerpc"]["status"] \
        == "built"
    assert set(coverage["drivers/virtio/virtio_mem.c"]) == {"x86_64", "arm64", "powerpc", "s390"}
    probe = coverage["drivers/base/memory.c"]
    assert probe["x86_64"]["calls"] == probe["powerpc"]["calls"] == "compiled"
    assert probe["arm64"]["calls"] == "compiled out"
    assert "CONFIG_ARCH_MEMORY_PROBE" in probe["arm64"]["reason"]
    for caller in ("drivers/acpi/acpi_memhotplug.c", "drivers/xen/balloon.c",
                   "drivers/hv/hv_balloon.c"):
        assert coverage[caller]["x86_64"]["calls"] == "compiled", caller
    assert check(stage, "bisect")["status"] == "pass"
    for arch in ("x86_64", "arm64", "powerpc", "s390"):
        assert check(stage, f"{arch} config")["status"] == "pass"
        assert check(stage, f"{arch} patch-4")["data"]["new_warnings"] == []
        metadata = json.loads((tmp_path / "build" / arch / "metadata.json").read_text())
        assert metadata["results"]["status"] == "PASS"
        assert "gcc" in metadata["toolchain"]["version"]
        assert "CONFIG_MEMORY_HOTPLUG=y" in (tmp_path / "build" / arch / "config").read_text()
    assert check(stage, "x86_64 sparse")["status"] == "pass"


@pytest.fixture
def user_checkout(real_tree: Tree, tmp_path: Path) -> Iterator[Path]:
    """A user's clone with uncommitted work, and (next to it) a cache of its own; both are
    removed afterwards (a Linux checkout is big: do not leave it to pytest's tmp cleanup)."""
    clone = tmp_path / "user" / "linux"
    git(real_tree.path, "clone", "-q", "--shared", str(real_tree.path), str(clone))
    git(clone, "checkout", "-q", "-b", "my-work")
    notes = clone / "mm" / "memory_hotplug.c"
    notes.write_text(notes.read_text() + "/* my uncommitted edit */\n")
    yield clone
    shutil.rmtree(clone.parent, ignore_errors=True)


def test_interrupt_leaves_the_users_tree_untouched(user_checkout: Path) -> None:
    before = snapshot(user_checkout)
    cache = user_checkout.parent / "cache"
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.Popen(
        [str(kseries), "build", "--tree", str(user_checkout), "--cache-dir", str(cache),
         "--mbox", str(FIXTURES / "small-series.mbx"), "--arch", "x86_64", "--no-sparse",
         "--out", str(user_checkout.parent / "out")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "build x86_64 base:" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=300)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert snapshot(user_checkout) == before
    worktree = next((cache / "worktrees").iterdir())
    assert git(worktree, "rev-parse", "HEAD") == git(
        user_checkout, "rev-parse", "kseries/mhp-driver-managed/small-series")
    assert git(worktree, "status", "--porcelain") == ""
