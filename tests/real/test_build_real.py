"""kseries build on the real 6.12 tree with real cross compilers: the detectors on real code.

The fixture series (tests/fixtures/build-*.mbx, made with git format-patch on the imported
tree) add a warning, swap a W=1 warning for another, break only s390, and add a file. All
runs share the per-arch build dirs and ccache of the default cache, as `kseries build` does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kseries.kernel.tree import Tree, cache_dir
from kseries.series.apply import worktree_path
from tests.conftest import FIXTURES, ROOT, CliResult, DefaultBuild, git, run_cli, snapshot

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


def test_a_file_added_later_is_built_from_the_patch_that_adds_it(real_tree: Tree,
                                                                  tmp_path: Path) -> None:
    """Patch 2 adds mm/memory_hotplug_fixture.c: patch 1 must not try to compile it (a series
    that posts its KUnit suite, as v3 does, adds a file). The object must be new to the build
    dir, as on a first run: one built before has a .cmd saying patch 1 does not touch it."""
    for built in cache_dir().glob("build/series-x86_64-*/mm/*memory_hotplug_fixture*"):
        built.unlink()
    result = build(tmp_path, "--mbox", FIXTURES / "build-new-file.mbx", "--arch", "x86_64",
                   "--no-sparse")
    assert result.returncode == 0, result.stdout + result.stderr
    stage = build_stage(tmp_path)
    assert stage["status"] == "pass", stage["summary"]
    assert check(stage, "x86_64 patch-1")["data"]["objects"] == ["mm/memory_hotplug.o"]
    assert "mm/memory_hotplug_fixture.o" in check(stage, "x86_64 patch-2")["data"]["objects"]
    assert "mm/memory_hotplug_fixture.o" not in check(stage, "x86_64 base")["data"]["objects"]
    built = stage["data"]["coverage"]["mm/memory_hotplug_fixture.c"]["x86_64"]
    assert built["status"] == "built"


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


def test_series_builds_everywhere_bisectable_without_new_warnings(
        default_build: DefaultBuild, tmp_path: Path) -> None:
    result = default_build.result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.copytree(default_build.out, tmp_path, dirs_exist_ok=True)  # callers adds a stage
    stage = build_stage(tmp_path)
    assert stage["status"] == "pass", stage["summary"]
    coverage = stage["data"]["coverage"]
    expected = {"mm/memory_hotplug.c", "drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c",
                "mm/memory_hotplug_kunit.c", "arch/powerpc/kexec/file_load_64.c",
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
        assert "gcc" in metadata["compiler"]["version_full"]
        assert metadata["build"]["config"] == "config"
        assert "CONFIG_MEMORY_HOTPLUG=y" in (tmp_path / "build" / arch / "config").read_text()
    assert check(stage, "x86_64 sparse")["status"] == "pass"
    assert_callers_converted_with_their_arches(tmp_path)


# The 8 callers of the add_memory() family in 6.12, and v3's KUnit suite, and the arch whose
# build must compile each.
CALLER_ARCH = {
    "mm/memory_hotplug_kunit.c": "x86_64",
    "arch/powerpc/platforms/pseries/hotplug-memory.c": "powerpc",
    "drivers/acpi/acpi_memhotplug.c": "x86_64",
    "drivers/base/memory.c": "x86_64",
    "drivers/s390/char/sclp_cmd.c": "s390",
    "drivers/hv/hv_balloon.c": "x86_64",
    "drivers/xen/balloon.c": "x86_64",
    "drivers/virtio/virtio_mem.c": "x86_64",
    "drivers/dax/kmem.c": "x86_64",
}


def assert_callers_converted_with_their_arches(out: Path) -> None:
    """`kseries callers` after `kseries build` (same --out): every caller is converted and
    its line names the arches whose build compiled it (the build stage's coverage)."""
    result = run_cli("callers", "--no-spatch", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["name"] == "callers")
    calls = {c["data"]["file"]: c for c in stage["checks"] if c["name"].startswith("call ")
             and c["data"]["file"] != "mm/memory_hotplug.c"}
    assert set(calls) == set(CALLER_ARCH)
    for path, arch in CALLER_ARCH.items():
        call = calls[path]
        assert call["status"] == "pass", call
        assert arch in call["data"]["arches"], call
        assert call["summary"].endswith(f"built on {', '.join(call['data']['arches'])}"), call
        assert ": converted; built on " in call["summary"], call
    assert not any(c["name"] == "cross-check with builds" for c in stage["checks"])
    table = result.stdout
    for path in CALLER_ARCH:
        assert path in table


def test_interrupt_leaves_the_users_tree_untouched(real_tree: Tree, tmp_path: Path) -> None:
    """Ctrl-C while the scratch worktree is at patch 1: the tree given with --tree, with
    uncommitted work in it, is byte-identical afterwards, and the scratch worktree is back
    at the series' head.

    The tree passed is the imported tree itself (as a user's --tree), so the scratch
    worktree and build dir are the warm shared ones: a second 80k-file checkout costs
    minutes to write and to delete on this machine. Its edits are undone afterwards."""
    edited = real_tree.path / "Documentation" / "admin-guide" / "mm" / "memory-hotplug.rst"
    original = edited.read_bytes()
    untracked = real_tree.path / "kseries-test-untracked-notes.txt"
    try:
        edited.write_bytes(original + b"\n.. my uncommitted note\n")
        untracked.write_text("my untracked work\n")
        before = snapshot(real_tree.path)
        stderr, returncode = interrupt_build_at_patch_1(real_tree, tmp_path)
        after = snapshot(real_tree.path)
    finally:
        edited.write_bytes(original)
        untracked.unlink(missing_ok=True)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    assert after == before
    worktree = worktree_path(cache_dir(), real_tree)
    assert git(worktree, "rev-parse", "HEAD") == git(
        real_tree.path, "rev-parse", "kseries/mhp-driver-managed/small-series")
    assert git(worktree, "status", "--porcelain") == ""


def default_sigint() -> None:
    """SIGINT as a terminal's Ctrl-C finds it. A shell starts background jobs with SIGINT
    ignored, the ignore is inherited, and Python then installs no KeyboardInterrupt handler:
    `make check &` would otherwise make this test fail for a reason outside kseries."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_build_at_patch_1(real_tree: Tree, tmp_path: Path) -> tuple[str, int | None]:
    """Start `kseries build` on the small series and SIGINT it at patch 1: (stderr, exit)."""
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.Popen(
        [str(kseries), "build", "--tree", str(real_tree.path),
         "--mbox", str(FIXTURES / "small-series.mbx"), "--arch", "x86_64", "--no-sparse",
         "--out", str(tmp_path / "out")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=default_sigint)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "build x86_64 patch-1:" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=300)
    return "".join(seen) + rest, proc.returncode
