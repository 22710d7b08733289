"""kseries kunit without a kernel build: the overlay, result parsing, verdicts, the CLI options.

The KTAP samples below are in the exact shape the kernel's KUnit executor prints on a
serial console (optional printk timestamps, tab or space indentation); the JSON samples
are in the shape tools/testing/kunit/kunit_json.py writes. test_kunit_real.py feeds
real kernel output through the real kunit.py.
"""

from __future__ import annotations

import argparse
import email
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from unidiff import PatchSet

from kseries.core.errors import KseriesError
from kseries.core.report import worst
from kseries.kernel.arches import get_arch
from kseries.series import apply as ap
from kseries.stages.kunit import stage as kunit
from kseries.stages.kunit import verdicts
from kseries.stages.kunit.overlay import Hook, apply_hook, format_patch, lay_overlay, load_overlay
from kseries.stages.kunit.results import (
    CaseResult,
    case_names,
    console_cases,
    merge,
    missing_cases,
    parse_json,
    suite_name,
)
from tests.conftest import ROOT, git

OVERLAY = ROOT / "kernel-overlay"
SUITE = "memory_hotplug_driver_managed"
CASES = ["dm_flag_resource_and_removal", "dm_flag_no_firmware_memmap",
         "no_flag_resource_and_removal", "no_flag_firmware_memmap", "dm_named_resource",
         "dm_bad_name_rejected", "dm_memblock_flag", "dm_kexec_file_hole_search"]

KTAP_CONSOLE = """\
[    0.000000] Linux version 6.12.117 (root@host) (gcc) #1 SMP
[    1.234567] KTAP version 1
[    1.234568] 1..1
[    1.234569]     KTAP version 1
[    1.234570]     # Subtest: memory_hotplug_driver_managed
[    1.234571]     # module: memory_hotplug_kunit
[    1.234572]     1..3
[    1.300000]     # dm_flag_resource_and_removal: test range [0x100000000-0x107ffffff], node 0
[    1.400000]     ok 1 dm_flag_resource_and_removal
[    1.500000]     # no_flag_firmware_memmap: EXPECTATION FAILED at mm/memory_hotplug_kunit.c:433
[    1.500001]     Expected memmap.exact_ram == 1U, but
[    1.500002]         memmap.exact_ram == 0 (0x0)
[    1.500003] ACPI: some unrelated kernel message
[    1.500004]     not ok 2 no_flag_firmware_memmap
[    1.600000]     ok 3 dm_memblock_flag # SKIP CONFIG_ARCH_KEEP_MEMBLOCK is not set: memblock \
is discarded after boot
[    1.600001] # memory_hotplug_driver_managed: pass:1 fail:1 skip:1 total:3
[    1.600002] not ok 1 memory_hotplug_driver_managed
"""

KUNIT_JSON = {
    "name": "KUnit Test Group", "sub_groups": [{
        "name": SUITE, "sub_groups": [], "test_cases": [
            {"name": "dm_flag_resource_and_removal", "status": "PASS"},
            {"name": "no_flag_firmware_memmap", "status": "FAIL"},
            {"name": "dm_memblock_flag", "status": "SKIP"},
        ]}],
    "test_cases": [], "arch": "x86_64", "defconfig": "kunit_defconfig",
}


# --- the overlay ------------------------------------------------------------------------


def test_overlay_manifest_names_the_suite_and_both_hooks() -> None:
    overlay = load_overlay()
    assert overlay.files == ("mm/memory_hotplug_kunit.c",)
    assert {h.file for h in overlay.hooks} == {"mm/Kconfig", "mm/Makefile", "MAINTAINERS"}


def test_lay_overlay_adds_the_suite_and_hooks_and_is_idempotent(mm_repo: Path) -> None:
    overlay = load_overlay()
    lay_overlay(overlay, mm_repo)
    first = {p: (mm_repo / p).read_text() for p in ("mm/Kconfig", "mm/Makefile")}
    lay_overlay(overlay, mm_repo)
    assert {p: (mm_repo / p).read_text() for p in first} == first
    suite = (mm_repo / "mm" / "memory_hotplug_kunit.c").read_text()
    assert suite == (OVERLAY / "mm" / "memory_hotplug_kunit.c").read_text()
    kconfig = first["mm/Kconfig"]
    assert kconfig.index("config MEMORY_HOTPLUG_KUNIT_TEST") < kconfig.index(
        "endif # MEMORY_HOTPLUG")
    assert kconfig.index("config MHP_MEMMAP_ON_MEMORY") < kconfig.index(
        "config MEMORY_HOTPLUG_KUNIT_TEST")
    lines = first["mm/Makefile"].splitlines()
    at = lines.index("obj-$(CONFIG_DMAPOOL_TEST) += dmapool_test.o")
    assert lines[at + 1] == "obj-$(CONFIG_MEMORY_HOTPLUG_KUNIT_TEST) += memory_hotplug_kunit.o"
    assert "F:\tmm/memory_hotplug.c\nF:\tmm/memory_hotplug_kunit.c\n" in (
        mm_repo / "MAINTAINERS").read_text()


def test_base_shim_is_laid_only_onto_the_base(mm_repo: Path) -> None:
    """On the base, a force-included header defines MHP_DRIVER_MANAGED so the suite builds;
    with the series it is not laid, and the posted patch does not carry it."""
    overlay = load_overlay()
    lay_overlay(overlay, mm_repo)
    assert not (mm_repo / "mm" / "memory_hotplug_kunit_base.h").exists()
    assert "memory_hotplug_kunit_base.h" not in (mm_repo / "mm" / "Makefile").read_text()
    lay_overlay(overlay, mm_repo, on_base=True)
    lay_overlay(overlay, mm_repo, on_base=True)
    shim = (mm_repo / "mm" / "memory_hotplug_kunit_base.h").read_text()
    assert "#define MHP_DRIVER_MANAGED\t((__force mhp_t)BIT(4))" in shim
    lines = (mm_repo / "mm" / "Makefile").read_text().splitlines()
    at = lines.index("obj-$(CONFIG_MEMORY_HOTPLUG_KUNIT_TEST) += memory_hotplug_kunit.o")
    assert lines[at + 1] == ("CFLAGS_memory_hotplug_kunit.o += -include "
                             "$(srctree)/mm/memory_hotplug_kunit_base.h")
    assert lines.count(lines[at + 1]) == 1
    assert "memory_hotplug_kunit_base" not in extra_patch().read_text()


def test_laid_files_keep_the_overlay_mtime(mm_repo: Path) -> None:
    """Laid again after a checkout, the suite must not look newer than its object."""
    lay_overlay(load_overlay(), mm_repo)
    laid = (mm_repo / "mm" / "memory_hotplug_kunit.c").stat().st_mtime_ns
    assert laid == (OVERLAY / "mm" / "memory_hotplug_kunit.c").stat().st_mtime_ns


def test_checkout_removes_the_overlay_again(mm_repo: Path) -> None:
    head = git(mm_repo, "rev-parse", "HEAD")
    lay_overlay(load_overlay(), mm_repo)
    assert git(mm_repo, "status", "--porcelain")
    ap.checkout(mm_repo, head)
    assert git(mm_repo, "status", "--porcelain") == ""
    assert not (mm_repo / "mm" / "memory_hotplug_kunit.c").exists()


def test_missing_anchor_is_a_one_line_error(mm_repo: Path) -> None:
    (mm_repo / "mm" / "Kconfig").write_text("config FOO\n\tbool\n")
    with pytest.raises(KseriesError, match=r"mm/Kconfig has 0 lines 'endif # MEMORY_HOTPLUG'"):
        lay_overlay(load_overlay(), mm_repo)


def test_duplicate_anchor_is_refused() -> None:
    hook = Hook("mm/Makefile", "after", "x", "y\n")
    with pytest.raises(KseriesError, match="has 2 lines 'x'"):
        apply_hook("x\nx\n", hook)


def test_hook_before_and_after_insert_next_to_the_anchor() -> None:
    assert apply_hook("a\nB\nc\n", Hook("f", "before", "B", "new\n")) == "a\nnew\nB\nc\n"
    assert apply_hook("a\nB\nc\n", Hook("f", "after", "B", "new\n")) == "a\nB\nnew\nc\n"
    assert apply_hook("a\nnew\nB\n", Hook("f", "before", "B", "new\n")) == "a\nnew\nB\n"


def test_overlay_refuses_to_overwrite_a_kernel_file(mm_repo: Path) -> None:
    (mm_repo / "mm" / "memory_hotplug_kunit.c").write_text("/* someone else's */\n")
    with pytest.raises(KseriesError, match="already exists"):
        lay_overlay(load_overlay(), mm_repo)


def test_bad_manifest_paths_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "overlay.toml").write_text('files = ["../evil.c"]\n')
    with pytest.raises(KseriesError, match="relative path inside the tree"):
        load_overlay(tmp_path)
    (tmp_path / "overlay.toml").write_text('files = ["a.c"]\n[[hook]]\nfile = "b"\n')
    (tmp_path / "a.c").write_text("")
    with pytest.raises(KseriesError, match="exactly one of 'before' or 'after'"):
        load_overlay(tmp_path)


def test_kunitconfig_enables_the_symbol_the_overlay_defines() -> None:
    symbol = re.search(r"^config (\w+)", (OVERLAY / "hooks/mm/Kconfig").read_text(), re.M)
    assert symbol is not None
    makefile = (OVERLAY / "hooks/mm/Makefile").read_text()
    assert f"obj-$(CONFIG_{symbol.group(1)}) += memory_hotplug_kunit.o" in makefile
    lines = (ROOT / "Kconfig.fragments/kunit.kunitconfig").read_text().splitlines()
    assert f"CONFIG_{symbol.group(1)}=y" in lines
    assert "CONFIG_MHP_DEFAULT_ONLINE_TYPE_OFFLINE=y" in lines


# --- the suite's source, and the extra patch for upstream ------------------------------


def test_suite_source_names_its_suite_and_cases() -> None:
    source = (OVERLAY / "mm" / "memory_hotplug_kunit.c").read_text()
    assert suite_name(source) == SUITE
    assert case_names(source) == CASES


def extra_patch() -> Path:
    patches = sorted((ROOT / "patches" / "extra").glob("0001-*.patch"))
    assert len(patches) == 1, patches
    return patches[0]


def test_extra_patch_is_the_overlay() -> None:
    """patches/extra/ must post exactly what kseries tests: the same file, the same hooks."""
    text = extra_patch().read_text()
    files = {f.path: f for f in PatchSet(text)}
    assert set(files) == {"MAINTAINERS", "mm/Kconfig", "mm/Makefile",
                          "mm/memory_hotplug_kunit.c"}
    suite = files["mm/memory_hotplug_kunit.c"]
    assert suite.is_added_file
    added = "".join(line.value for hunk in suite for line in hunk if line.is_added)
    assert added == (OVERLAY / "mm" / "memory_hotplug_kunit.c").read_text()
    for name in ("mm/Kconfig", "mm/Makefile", "MAINTAINERS"):
        patch = files[name]
        assert not patch.removed
        added = "".join(line.value for hunk in patch for line in hunk if line.is_added)
        assert added == (OVERLAY / "hooks" / name).read_text()


def test_extra_patch_is_signed_off_by_the_maintainers() -> None:
    text = extra_patch().read_text()
    headers = email.message_from_string(text)
    who = "Seed 1d42b095 maintainers <maintainers@users.noreply.r-seed-1d42b095.example>"
    assert " ".join(str(headers["From"]).split()) == who
    assert str(headers["Subject"]).startswith("[PATCH] mm/memory_hotplug: ")
    assert f"\nSigned-off-by: {who}\n---\n" in text


# --- parsing results ---------------------------------------------------------------------


def test_console_cases_finds_reasons_and_diagnostics() -> None:
    cases = console_cases(KTAP_CONSOLE.replace("\\\n", ""))
    assert set(cases) == {(SUITE, "dm_flag_resource_and_removal"),
                          (SUITE, "no_flag_firmware_memmap"), (SUITE, "dm_memblock_flag")}
    skip = cases[(SUITE, "dm_memblock_flag")]
    assert skip.status == "skip"
    assert skip.reason.startswith("CONFIG_ARCH_KEEP_MEMBLOCK is not set")
    failed = cases[(SUITE, "no_flag_firmware_memmap")]
    assert failed.status == "fail"
    assert failed.diagnostics[0] == ("no_flag_firmware_memmap: EXPECTATION FAILED at "
                                     "mm/memory_hotplug_kunit.c:433")
    assert "ACPI: some unrelated kernel message" not in failed.diagnostics


def test_console_cases_without_timestamps_and_with_tabs_and_dashes() -> None:
    text = ("TAP version 14\n1..1\n\t# Subtest: s\n\t1..2\n\tok 1 - a\n"
            "\tok 2 - b # SKIP no hotplug here\nok 1 - s\n")
    cases = console_cases(text)
    assert cases[("s", "a")].status == "pass"
    assert cases[("s", "b")].reason == "no hotplug here"


def test_merge_takes_status_from_json_and_reasons_from_the_console() -> None:
    results = merge(parse_json(json.dumps(KUNIT_JSON)),
                    console_cases(KTAP_CONSOLE.replace("\\\n", "")))
    by_name = {r.name: r for r in results}
    assert by_name["dm_flag_resource_and_removal"].summary() == "passed"
    assert by_name["dm_memblock_flag"].summary().startswith(
        "SKIP: CONFIG_ARCH_KEEP_MEMBLOCK is not set")
    assert by_name["no_flag_firmware_memmap"].summary().startswith(
        "failed: no_flag_firmware_memmap: EXPECTATION FAILED at mm/memory_hotplug_kunit.c:433")


def test_cases_that_never_reported_are_errors() -> None:
    results = [CaseResult(SUITE, "dm_flag_resource_and_removal", "pass")]
    missing = missing_cases(results, SUITE, CASES)
    assert [m.name for m in missing] == CASES[1:]
    assert all(m.status == "error" and "crashed" in m.summary() for m in missing)


def test_garbage_json_is_a_one_line_error() -> None:
    with pytest.raises(KseriesError, match="does not parse"):
        parse_json("{not json")


# --- verdicts --------------------------------------------------------------------------------


def run_of(variant: verdicts.Variant, outcome: verdicts.Outcome, statuses: dict[str, str],
           errors: tuple[str, ...] = (), arch: str = "x86_64") -> verdicts.KunitRun:
    cases = tuple(CaseResult(SUITE, name, status, "why" if status == "skip" else "")  # type: ignore[arg-type]
                  for name, status in statuses.items())
    return verdicts.KunitRun(arch, variant, outcome, "summary", cases, errors)


def test_base_that_does_not_build_because_of_the_suite_bites() -> None:
    error = ("mm/memory_hotplug_kunit.c:392:29: error: 'MHP_DRIVER_MANAGED' undeclared "
             "(first use in this function)")
    check = verdicts.bite_check(run_of("base", "build-failed", {}, (error,)), "repro")
    assert check.status == "pass"
    assert "does not build" in check.summary and "MHP_DRIVER_MANAGED" in check.summary


def test_base_that_fails_elsewhere_to_build_is_only_a_warning() -> None:
    check = verdicts.bite_check(run_of("base", "build-failed", {}, ("fs/x.c:1:1: error: y",)), "")
    assert check.status == "warn"


def test_base_with_failing_cases_bites_and_a_passing_base_does_not() -> None:
    failing = run_of("base", "failed", {"a": "fail", "b": "pass"})
    assert verdicts.bite_check(failing, "").status == "pass"
    passing = run_of("base", "passed", {"a": "pass", "b": "skip"})
    check = verdicts.bite_check(passing, "")
    assert check.status == "fail" and "does not detect" in check.summary


def test_series_checks_are_per_case_and_skips_carry_their_reason() -> None:
    checks = verdicts.run_checks(run_of("series", "passed", {"a": "pass", "b": "skip"}), "r")
    assert [(c.name, c.status) for c in checks] == [(f"x86_64: {SUITE}.a", "pass"),
                                                    (f"x86_64: {SUITE}.b", "skip")]
    assert checks[1].summary == "SKIP: why"


def test_required_arch_must_pass_something_and_be_available() -> None:
    all_skipped = verdicts.run_checks(run_of("series", "passed", {"a": "skip"}), "")
    assert all_skipped[-1].status == "fail"
    missing = verdicts.KunitRun("x86_64", "series", "unavailable", "no qemu")
    assert verdicts.run_checks(missing, "")[0].status == "fail"
    other = verdicts.KunitRun("s390", "series", "unavailable", "no qemu")
    assert verdicts.run_checks(other, "")[0].status == "skip"


def test_build_errors_are_extracted_relative_to_the_tree() -> None:
    prefixes = kunit.tree_prefixes(Path("/cache/worktrees/linux"), Path("/cache/build/k"))
    output = ("[08:00:00] Building KUnit Kernel ...\n"
              "make[4]: *** [/cache/worktrees/linux/scripts/Makefile.build:234: "
              "mm/memory_hotplug_kunit.o] Error 1\n"
              "/cache/worktrees/linux/mm/memory_hotplug_kunit.c:467:31: error: "
              "'MHP_DRIVER_MANAGED' undeclared (first use in this function)\n"
              "ERROR:root:/cache/worktrees/linux/mm/memory_hotplug_kunit.c: In function 'f':\n"
              "../../worktrees/linux/mm/memory_hotplug_kunit.c:481:31: error: 'MHP_DRIVER_MANAGED' "
              "undeclared (first use in this function)\n")
    run = kunit.build_failure("x86_64", "base", kunit.Ran(1, output), 1.0, Path("log"),
                              prefixes)
    assert run.outcome == "build-failed"
    assert run.errors[:2] == (
        "mm/memory_hotplug_kunit.c:467:31: error: 'MHP_DRIVER_MANAGED' undeclared "
        "(first use in this function)",
        "mm/memory_hotplug_kunit.c:481:31: error: 'MHP_DRIVER_MANAGED' undeclared "
        "(first use in this function)")
    assert run.errors[2].startswith("make[4]: *** [scripts/Makefile.build:234")
    assert run.summary.startswith("does not build: mm/memory_hotplug_kunit.c:467:31")
    config = kunit.build_failure("x86_64", "series", kunit.Ran(1, "Missing: CONFIG_X=y\n"),
                                 1.0, Path("log"))
    assert config.outcome == "config-failed" and "CONFIG_X" in config.summary


# --- options, data and processes -------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    kunit.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_arch_option_defaults_to_x86_64_and_expands_all() -> None:
    assert kunit.selected_arches(parse().arch) == ("x86_64",)
    assert kunit.selected_arches(parse("--arch", "all").arch) == kunit.ALL_ARCHES
    assert kunit.selected_arches(parse("--arch", "s390", "--arch", "x86_64",
                                       "--arch", "s390").arch) == ("s390", "x86_64")
    assert parse("--against-base").against_base


def test_unknown_arch_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--arch", "mips")
    assert exited.value.code == 2


def test_every_arch_has_its_kunit_facts_and_the_kunitconfigs_exist() -> None:
    for arch in kunit.ALL_ARCHES:
        paths = kunit.kunitconfigs(arch)
        assert all(p.is_file() for p in paths)
        args = kunit.common_args(get_arch(arch), Path("/b"))
        assert f"--arch={arch}" in args and "--build_dir=/b" in args
        assert any(a.startswith("--make_options=CC=") for a in args)


def test_qemu_args_and_timeouts_come_from_the_arch_registry() -> None:
    powerpc = get_arch("powerpc")
    assert kunit.accel_args(powerpc, "tcg") == ["--qemu_args", "-accel tcg",
                                                "--qemu_args", "-cpu power9"]
    assert kunit.accel_args(get_arch("x86_64"), "kvm") == ["--qemu_args", "-accel kvm"]
    assert (kunit.timeout_for(powerpc, "tcg"), kunit.timeout_for(powerpc, "kvm")) == (900, 180)


def test_console_cases_include_a_suite_the_log_ended_in() -> None:
    cut = KTAP_CONSOLE[:KTAP_CONSOLE.index("[    1.600000]")]
    cases = console_cases(cut)
    assert set(cases) == {(SUITE, "dm_flag_resource_and_removal"),
                          (SUITE, "no_flag_firmware_memmap")}


def test_run_logged_kills_a_hung_process_group(tmp_path: Path) -> None:
    """A hung guest: kunit.py and its QEMU child both end when the time is up."""
    log = tmp_path / "log"
    script = ("import subprocess, time; child = subprocess.Popen(['sleep', '600']); "
              "print('child', child.pid, flush=True); time.sleep(600)")
    ran = kunit.run_logged([sys.executable, "-c", script], tmp_path, log, 2)
    assert ran.returncode is None and kunit.timed_out(ran)
    assert "killed after 2 s" in log.read_text()
    child = int(re.search(r"child (\d+)", ran.output).group(1))  # type: ignore[union-attr]
    assert wait_gone(child)


def wait_gone(pid: int) -> bool:
    """PID has exited (gone, or a zombie waiting for init); polls for up to 10 s."""
    for _ in range(100):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        subprocess.run(["sleep", "0.1"], check=True)
    return False


def test_run_logged_returns_the_exit_code_and_output(tmp_path: Path) -> None:
    ran = kunit.run_logged([sys.executable, "-c", "print('hello'); raise SystemExit(3)"],
                           tmp_path, tmp_path / "log", 30)
    assert ran == kunit.Ran(3, "hello\n")
    assert not kunit.timed_out(ran)


def test_stage_passes_with_skipped_cases_and_names_the_bite() -> None:
    series = run_of("series", "passed", {"a": "pass", "b": "skip"})
    error = "mm/memory_hotplug_kunit.c:1:1: error: 'MHP_DRIVER_MANAGED' undeclared"
    base = run_of("base", "build-failed", {}, (error,))
    checks = verdicts.run_checks(base, "") + verdicts.run_checks(series, "")
    assert worst([c.status for c in checks]) == "pass"
    assert verdicts.stage_summary([base, series], checks) == (
        "x86_64 base: does not build (bites); x86_64: 1 pass 1 skip")
    skipped = verdicts.run_checks(verdicts.KunitRun("s390", "series", "unavailable", "no qemu"), "")
    assert worst([c.status for c in skipped]) == "skip"
    failing = verdicts.run_checks(run_of("series", "failed", {"a": "fail"}, arch="arm64"), "")
    assert worst([c.status for c in checks + failing]) == "fail"


def test_diagnostics_name_files_relative_to_the_tree() -> None:
    case = CaseResult(SUITE, "a", "fail", "", (
        "a: ASSERTION FAILED at ../../worktrees/linux-1/mm/memory_hotplug_kunit.c:387",))
    fixed = kunit.tree_relative(case, Path("/c/worktrees/linux-1"), Path("/c/build/kunit-s390"))
    assert fixed.diagnostics == ("a: ASSERTION FAILED at mm/memory_hotplug_kunit.c:387",)


def test_format_patch_posts_what_lay_overlay_lays(mm_repo: Path, tmp_path: Path) -> None:
    """The upstream patch and the overlay give the same tree (git apply vs lay_overlay)."""
    head = git(mm_repo, "rev-parse", "HEAD")
    text = format_patch(load_overlay(), mm_repo, head, "mm: Add tests\n\nBecause.\n")
    assert git(mm_repo, "rev-parse", "HEAD") == head and git(mm_repo, "status", "--porcelain") == ""
    patch = tmp_path / "0001.patch"
    patch.write_text(text)
    git(mm_repo, "apply", str(patch))
    applied = {p: (mm_repo / p).read_text() for p in
               ("MAINTAINERS", "mm/Kconfig", "mm/Makefile", "mm/memory_hotplug_kunit.c")}
    ap.checkout(mm_repo, head)
    lay_overlay(load_overlay(), mm_repo)
    assert {p: (mm_repo / p).read_text() for p in applied} == applied
