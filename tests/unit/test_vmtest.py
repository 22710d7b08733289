"""vmtest parts that need no kernel tree: TAP parsing, the cpio writer (read back by the real
cpio), the guest script's parsers run by the real busybox on real kexec-tools 2.0.25 / Linux
6.12 output, the host recheck, QEMU's own answer about virtio-mem, and option parsing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.core.report import worst
from kseries.kernel import ktap
from kseries.kernel.qemu import (
    Guest,
    VirtioMem,
    find_problems,
    machine,
    memory_device_support,
    qemu_command,
)
from kseries.stages.vmtest import initramfs as ir
from kseries.stages.vmtest.checks import (
    KernelResult,
    Span,
    compare,
    host_verdict,
    side_by_side,
    uncovered,
)
from kseries.stages.vmtest.guest import OVERLAY, VmOptions, kernel_cmdline
from kseries.stages.vmtest.options import parse_phases
from kseries.stages.vmtest.stage import skipped_stage, userspace_problem
from tests.conftest import FIXTURES, ROOT, CliResult, assert_one_line_error

SAMPLES = FIXTURES / "vmtest"
BUSYBOX = shutil.which("busybox")

GOOD_TAP = """\
TAP version 13
1..4
# vmtest-kernel: 6.12.117 x86_64
# vmtest-range virtio_mem 0x100000000-0x10fffffff System RAM (virtio_mem)
# "System RAM (virtio_mem)": 256 MiB, requested 256 MiB (waited 0 s)
ok 1 boot.iomem_virtio_mem
# vmtest-range memmap 0x0-0x9fbff System RAM
# vmtest-range memmap 0x100000-0x1ffdffff System RAM
ok 2 boot.memmap_excludes_virtio_mem
# vmtest-segment kexec_load 0x1f200000-0x1ff21fff segment[0]
ok 3 boot.kexec_load_segments
# skip extra tests: debugfs is not mounted
ok 4 boot.mem_on_off_test # SKIP no hot-pluggable memory
"""


# -- KTAP -----------------------------------------------------------------------------------


def test_ktap_parses_results_diagnostics_and_skips() -> None:
    parsed = ktap.parse(GOOD_TAP.replace("\n", "\r\n"))
    assert parsed.version_seen and parsed.planned == 4 and parsed.complete
    assert [r.status for r in parsed.results] == ["pass", "pass", "pass", "skip"]
    first = parsed.results[0]
    assert first.name == "boot.iomem_virtio_mem"
    assert first.diagnostics[1].startswith("vmtest-range virtio_mem 0x100000000")
    assert parsed.results[3].reason == "no hot-pluggable memory"


def test_ktap_incomplete_run_and_failure_reason() -> None:
    text = "TAP version 13\n1..3\n# kexec -l failed (exit 1)\nnot ok 1 boot.kexec\n[  2.0] noise\n"
    parsed = ktap.parse(text)
    assert not parsed.complete and parsed.missing() == 2
    assert parsed.results[0].status == "fail"
    assert parsed.results[0].reason == "kexec -l failed (exit 1)"


# -- initramfs ------------------------------------------------------------------------------


def _cpio_listing(archive: Path) -> str:
    proc = subprocess.run(["cpio", "-itv", "--quiet"], input=archive.read_bytes(),
                          capture_output=True, check=True)
    return proc.stdout.decode()


def test_newc_archive_reads_back_with_cpio(tmp_path: Path) -> None:
    archive = ir.write_archive([
        ir.regular("vmtest/run.sh", b"#!/bin/sh\necho hi\n", executable=True),
        ir.regular("etc/data", b"x" * 5),
        ir.symlink("bin/sh", "/bin/busybox"),
        ir.char_device("dev/console", 5, 1),
        ir.regular("etc/data", b"replaced"),
    ], tmp_path / "initrd.cpio")
    listing = _cpio_listing(archive)
    assert "-rwxr-xr-x" in next(line for line in listing.splitlines() if "vmtest/run.sh" in line)
    assert "bin/sh -> /bin/busybox" in listing
    assert next(line for line in listing.splitlines() if "dev/console" in line).startswith("crw")
    names = [line.split()[-1] for line in listing.splitlines() if "->" not in line]
    assert names.index("vmtest") < names.index("vmtest/run.sh")  # parents first
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "etc/data"], input=archive.read_bytes(), cwd=out,
                   check=True)
    assert (out / "etc" / "data").read_bytes() == b"replaced"
    assert not list(tmp_path.glob("*.partial"))


def test_archive_is_reproducible(tmp_path: Path) -> None:
    entries = [ir.regular("a", b"1"), ir.directory("d")]
    assert ir.newc_archive(entries) == ir.newc_archive(list(reversed(entries)))


def test_program_brings_its_shared_libraries() -> None:
    kexec = shutil.which("kexec") or "/usr/sbin/kexec"
    if not Path(kexec).exists():
        pytest.fail("kexec-tools is not installed (make setup installs it)")
    paths = [e.path for e in ir.program("usr/sbin/kexec", Path(kexec))]
    assert paths[0] == "usr/sbin/kexec"
    assert any(p.endswith("/libc.so.6") for p in paths)
    assert any("ld-linux" in p for p in paths)


def test_bad_path_is_one_line_error() -> None:
    with pytest.raises(KseriesError, match="bad initramfs path"):
        ir.regular("../escape", b"")


# -- the guest script's parsers, run by busybox ----------------------------------------------


def guest_shell(script: str, tmp_path: Path) -> str:
    """Run SCRIPT with vmtest.sh's functions defined (VMTEST_LIBRARY_ONLY) under busybox sh."""
    if BUSYBOX is None:
        pytest.fail("busybox is not installed (make setup installs busybox-static)")
    env = {**os.environ, "VMTEST_LIBRARY_ONLY": "1", "W": str(tmp_path)}
    text = f". {OVERLAY / 'vmtest.sh'}\nW={tmp_path}\n{script}"
    proc = subprocess.run([BUSYBOX, "sh", "-c", text], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_guest_parses_kexec_load_segments_and_e820(tmp_path: Path) -> None:
    sample = SAMPLES / "kexec-load-debug.txt"
    out = guest_shell(f"kexec_tools_segments {sample}; echo --; e820_table {sample} ''",
                      tmp_path)
    segments, e820 = out.split("--\n")
    assert segments.splitlines() == [
        "000000001f200000 000000001ff21fff segment[0]",
        "000000001ffd2000 000000001ffd6fff segment[1]",
        "000000001ffd7000 000000001ffdffff segment[2]"]
    # only the E820 table handed over, not kexec-tools' own MEMORY RANGES
    assert e820.splitlines()[0] == "0000000000000400 000000000009fbff e820 type 1"
    assert len(e820.splitlines()) == 7


def test_guest_parses_kexec_file_dmesg(tmp_path: Path) -> None:
    out = guest_shell(f"e820_table {SAMPLES / 'kexec-file-dmesg.txt'} '.*kexec-bzImage64: '",
                      tmp_path)
    assert "0000000000100000 000000001ffdffff e820 type 1" in out.splitlines()


def test_guest_overlap_and_coverage(tmp_path: Path) -> None:
    (tmp_path / "vmem").write_text("0000000100000000 000000010fffffff System RAM (virtio_mem)\n")
    (tmp_path / "map").write_text("0000000000100000 000000001ffdffff RAM\n"
                                  "000000010ff00000 0000000120000000 RAM\n")
    (tmp_path / "dumped").write_text("0000000100000000 0000000107ffffff a\n"
                                     "0000000108000000 000000010fffffff b\n")
    (tmp_path / "half").write_text("0000000100000000 0000000107ffffff a\n")
    out = guest_shell(f"overlaps {tmp_path}/map {tmp_path}/vmem; echo --; "
                      f"uncovered 0000000100000000 000000010fffffff {tmp_path}/dumped; echo --; "
                      f"uncovered 0000000100000000 000000010fffffff {tmp_path}/half", tmp_path)
    overlap, covered, half = out.split("--\n")
    assert overlap.strip() == ("0x10ff00000-0x120000000 (RAM) overlaps 0x100000000-0x10fffffff "
                               "(System RAM (virtio_mem))")
    assert covered == ""
    assert half.strip() == "0x108000000"


def test_guest_reads_kdump_pt_load_and_kexec_file_segments(tmp_path: Path) -> None:
    dump = tmp_path / "d"
    out = guest_shell(f"kdump_pt_load {SAMPLES / 'kdump-debug.txt'} > {dump}; cat {dump};"
                      f" echo --; uncovered 0000000100000000 000000010fffffff {dump}; "
                      f"echo --; kexec_file_segments {SAMPLES / 'kexec-file-dmesg.txt'}", tmp_path)
    dumped, hole, file_segments = out.split("--\n")
    assert "0000000100000000 000000010fffffff PT_LOAD" in dumped.splitlines()
    assert len(dumped.splitlines()) == 4  # backup region, RAM around crashkernel, virtio-mem
    assert hole == ""
    assert file_segments.splitlines() == [
        "000000001ffdb000 000000001ffdffff segment[0]",
        "000000001ffd9000 000000001ffdafff segment[1]",
        "000000001f200000 000000001ff21fff segment[2]"]


def test_guest_script_refuses_to_run_on_a_host() -> None:
    if BUSYBOX is None:
        pytest.fail("busybox is not installed")
    proc = subprocess.run([BUSYBOX, "sh", str(OVERLAY / "vmtest.sh")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 4 and "not in a kseries vmtest guest" in proc.stderr


# -- host recheck and comparison ------------------------------------------------------------


def test_host_recheck_catches_a_guest_that_missed_an_overlap() -> None:
    lying = GOOD_TAP.replace("memmap 0x100000-0x1ffdffff", "memmap 0x100000-0x10fffffff")
    parsed = ktap.parse(lying)
    memmap = parsed.results[1]
    verdict, findings = host_verdict(parsed, memmap)
    assert verdict == "fail"
    assert "0x100000-0x10fffffff System RAM overlaps virtio-mem 0x100000000-0x10fffffff" in \
        findings[0]
    check = compare(memmap.name, memmap, None, parsed)
    assert check.status == "fail" and "host recheck" in check.summary


def test_compare_names_regressions_and_shows_addresses() -> None:
    series = ktap.parse(GOOD_TAP)
    base = ktap.parse(GOOD_TAP.replace("ok 3 boot.kexec_load_segments",
                                       "not ok 3 boot.kexec_load_segments"))
    fixed = compare("boot.kexec_load_segments", series.results[2], base.results[2], series)
    assert fixed.status == "pass" and "fixed by the series" in fixed.summary
    assert "0x1f200000-0x1ff21fff segment[0]" in fixed.summary
    regressed = compare("boot.kexec_load_segments", base.results[2], series.results[2], base)
    assert regressed.status == "fail" and regressed.summary.startswith("REGRESSION")
    rows = side_by_side(KernelResult("series", "c1", series, None, None),
                        KernelResult("base", "c0", base, None, None))
    assert {"test": "boot.kexec_load_segments", "series": "pass", "base": "fail"} in rows


def test_ktap_directives_map_to_check_statuses() -> None:
    """XFAIL passes, a test that timed out (never finished) fails, TODO counts as a skip."""
    parsed = ktap.parse("1..3\nok 1 boot.a # XFAIL known\nnot ok 2 boot.b # TIMEOUT 60 s\n"
                        "not ok 3 boot.c # TODO later\n")
    assert [compare(r.name, r, None, parsed).status for r in parsed.results] == [
        "pass", "fail", "skip"]
    rows = side_by_side(KernelResult("series", "c1", parsed, None, None), None)
    assert [row["series"] for row in rows] == ["pass", "fail", "skip"]


def test_coverage_helper() -> None:
    target = Span("range", "virtio_mem", 0x1000, 0x2fff, "")
    assert uncovered(target, [Span("range", "d", 0x2000, 0x2fff, ""),
                              Span("range", "d", 0x0, 0x1fff, "")]) is None
    assert uncovered(target, [Span("range", "d", 0x0, 0x1fff, "")]) == 0x2000


def test_stage_status_ignores_skips_next_to_passes() -> None:
    assert worst(["pass", "skip"]) == "pass"
    assert worst(["skip", "warn", "pass"]) == "warn"
    assert worst(["skip"]) == "skip"


def test_guest_health_names_panics_and_early_stops() -> None:
    console = "[ 1.0] foo\nKernel panic - not syncing: Attempted to kill init! exitcode=0x0\n"
    problems = find_problems(console + "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:1 x\n")
    assert [p.kind for p in problems] == ["kernel panic", "WARNING"]


# -- QEMU command line and QEMU's own answers -----------------------------------------------


def test_qemu_command_has_the_virtio_mem_device(tmp_path: Path) -> None:
    m = machine("x86_64")
    guest = Guest(m, tmp_path / "bzImage", tmp_path / "initrd", kernel_cmdline(m, VmOptions()),
                  virtio_mem=VirtioMem(requested=256 << 20))
    cmd = qemu_command(guest, tmp_path / "c", tmp_path / "r", tmp_path / "q")
    assert cmd[:3] == ["qemu-system-x86_64", "-M", "pc"]
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert "512M,maxmem=4096M,slots=1" in cmd
    assert "virtio-mem-pci,id=vm0,memdev=vm0-mem,requested-size=256M,block-size=2M" in cmd
    append = cmd[cmd.index("-append") + 1]
    assert "crashkernel=192M" in append and "vmtest.phases=boot:256,grow:512,shrink:128" in append


def test_qemu_maps_virtio_mem_on_x86_64() -> None:
    supported, detail = memory_device_support(machine("x86_64"))
    assert supported, detail
    assert "0x100000000" in detail


def test_phases_option() -> None:
    assert parse_phases("boot:256,grow:1024") == (("boot", 256), ("grow", 1024))
    for bad in ("grow:256", "boot:100", "boot:256,boot:384", "boot"):
        with pytest.raises(KseriesError, match="--phases"):
            parse_phases(bad)


def test_overlay_files_are_executable() -> None:
    for name in ("init", "vmtest.sh"):
        assert (OVERLAY / name).stat().st_mode & stat.S_IXUSR, name


# -- the command ----------------------------------------------------------------------------


def vmtest_cli(*args: str | Path) -> CliResult:
    """`kseries vmtest` through the one module entry point, `python -m kseries`."""
    proc = subprocess.run([sys.executable, "-m", "kseries", "vmtest", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_arches_without_virtio_mem_are_reasoned_skips() -> None:
    """powerpc and s390 have no virtio-mem in 6.12: a skip that says so, and where their
    coverage is instead; arm64 has a guest (Debian's arm64 userland)."""
    for arch in ("powerpc", "s390"):
        stage = skipped_stage(arch)
        assert stage.status == "skip" and "VIRTIO_MEM depends on X86_64 || ARM64" in \
            stage.summary, stage.summary
        assert "KUnit" in stage.summary
    assert userspace_problem("arm64") is None and userspace_problem("x86_64") is None


def test_bad_phases_is_one_line_error(tmp_path: Path) -> None:
    result = vmtest_cli("--phases", "grow:512", "--out", tmp_path)
    assert_one_line_error(result, "--phases", "the first phase must be 'boot'")


def test_arm64_results_go_to_a_virtio_console(tmp_path: Path) -> None:
    m = machine("arm64")
    guest = Guest(m, tmp_path / "Image", tmp_path / "initrd", kernel_cmdline(m, VmOptions()))
    cmd = qemu_command(guest, tmp_path / "c", tmp_path / "r", tmp_path / "q")
    assert cmd.count("-serial") == 1  # the console; -M virt has no second UART
    assert f"file,id=vmtest-results,path={tmp_path / 'r'}" in cmd
    assert "virtconsole,chardev=vmtest-results" in cmd
    assert "vmtest.results=hvc0" in cmd[cmd.index("-append") + 1]


def test_unknown_mutant_is_one_line_error_before_anything_runs(tmp_path: Path) -> None:
    result = vmtest_cli("--mutant", "no-such-mutant", "--out", tmp_path)
    assert_one_line_error(result, "unknown mutant no-such-mutant", "warn-at-probe")
    assert not (tmp_path / "report.json").exists()  # refused at the command line


def test_kdump_check_takes_what_to_cover_from_sysfs_not_iomem_names(tmp_path: Path) -> None:
    """online_device_blocks: the online memory blocks inside the device region (given on
    the command line), whatever /proc/iomem calls the memory; offline ones and blocks
    outside the region are not listed."""
    memory = tmp_path / "memory"
    for index, state in ((0, "online"), (32, "online"), (33, "offline"), (34, "online")):
        block = memory / f"memory{index}"
        block.mkdir(parents=True)
        (block / "phys_index").write_text(f"{index:08x}\n")
        (block / "state").write_text(f"{state}\n")
    (memory / "block_size_bytes").write_text("8000000\n")  # 128 MiB
    (tmp_path / "cmdline").write_text("console=ttyS0 vmtest.device=100000000-10fffffff\n")
    out = guest_shell(f"MEMORY={memory}; CMDLINE={tmp_path}/cmdline; online_device_blocks",
                      tmp_path)
    assert out.splitlines() == ["0000000100000000 0000000107ffffff memory32"]


def test_host_recheck_of_kdump_uses_the_blocks_the_guest_listed() -> None:
    """The kexec -p dump check is rechecked against online_device_blocks when printed: a
    kernel that renames the memory in /proc/iomem cannot hide it from the check."""
    tap = ("TAP version 13\n1..1\n# vmtest-range kdump_pt_load 0x0-0xfffff PT_LOAD\n"
           "# vmtest-range online_device_blocks 0x100000000-0x107ffffff memory32\n"
           "ok 1 boot.kdump_dumps_virtio_mem\n")
    parsed = ktap.parse(tap)
    verdict, findings = host_verdict(parsed, parsed.results[0])
    assert verdict == "fail"
    assert findings == ["virtio-mem 0x100000000-0x107ffffff memory32 is not dumped from "
                        "0x100000000 on"]
