"""The kexec/kdump parts of vmtest that need no kernel tree: the guest's command line for the
next kernel, its boot-map and block arithmetic (run by the real busybox), the vmcore reader
(compiled here, run on an ELF core written here), the self-contained initramfs (read back by
the real cpio), and the host's verdicts on a dump (backing-file usage, announced panics)."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.kernel import ktap
from kseries.kernel.qemu import MIB, Problem, Usage, unannounced
from kseries.stages.vmtest import initramfs as ir
from kseries.stages.vmtest.checks import as_known, compare, host_verdict, known_limit, usage_verdict
from kseries.stages.vmtest.guest import OVERLAY, SCENARIOS
from kseries.stages.vmtest.kernel import VMCORE_SOURCE, helper_binary
from kseries.stages.vmtest.mutants import (
    MutantRun,
    kill_table,
    load_mutant,
    load_mutants,
    mutant_checks,
)
from tests.unit.test_vmtest import guest_shell

CMDLINE = ("console=ttyS0 crashkernel=192M memhp_default_state=online_movable panic=-1 "
           "vmtest.mode=test vmtest.phases=boot:256,grow:512,shrink:128 vmtest.boot_size=256 "
           "vmtest.kdump_size=200 vmtest.plug_timeout=120")


def shell_with_cmdline(script: str, tmp_path: Path, cmdline: str = CMDLINE) -> str:
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    return guest_shell(f"CMDLINE={tmp_path}/cmdline\n{script}", tmp_path)


def test_next_kernel_gets_the_state_and_keeps_the_rest(tmp_path: Path) -> None:
    out = shell_with_cmdline(
        "REQUESTED=134217728 PLAN=34 test_number=21\n"
        "device_region() { echo '0000000140000000 000000017fffffff device'; }\n"
        "next_cmdline reboot kexec_load_reboot $test_number; capture_cmdline kdump_load 31",
        tmp_path)
    reboot, capture = out.splitlines()
    assert reboot.startswith("console=ttyS0 crashkernel=192M ")
    for word in ("vmtest.mode=reboot", "vmtest.phase=kexec_load_reboot", "vmtest.next=21",
                 "vmtest.requested=134217728", "vmtest.device=140000000-17fffffff",
                 "vmtest.plan=34", "vmtest.kdump_size=200"):
        assert word in reboot.split(), word
    assert "vmtest.mode=test" not in reboot
    assert "crashkernel=" not in capture and "vmtest.mode=capture" in capture.split()
    assert capture.endswith("irqpoll nr_cpus=1 reset_devices")
    # the next kernel reads its state back the same way
    again = shell_with_cmdline("param next; param device; param mode", tmp_path, reboot)
    assert again.splitlines() == ["21", "140000000-17fffffff", "reboot"]


def test_boot_map_reads_the_e820_table_this_kernel_logged(tmp_path: Path) -> None:
    dmesg = tmp_path / "dmesg.txt"
    dmesg.write_text(
        "[    0.000000] BIOS-provided physical RAM map:\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n"
        "[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000001ffdffff] usable\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000140000000-0x000000014fffffff] usable\n")
    out = shell_with_cmdline(f"dmesg() {{ cat {dmesg}; }}\nMEMMAP={tmp_path}/none\nboot_ram",
                             tmp_path)
    assert out.splitlines() == [
        "0000000000000000 000000000009fbff e820 usable",
        "0000000000100000 000000001ffdffff e820 usable",
        "0000000140000000 000000014fffffff e820 usable"]


def test_whole_blocks_rounds_up_to_the_memory_block(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    memory.mkdir()
    (memory / "block_size_bytes").write_text("8000000\n")
    out = shell_with_cmdline(f"MEMORY={memory}\nwhole_blocks $((200 << 20)); "
                             "whole_blocks $((256 << 20)); whole_blocks $((328 << 20))", tmp_path)
    assert [int(n) >> 20 for n in out.split()] == [256, 256, 384]


def test_offline_blocks_names_a_block_of_the_device_that_is_not_online(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    for name, index, state in (("memory40", "28", "online"), ("memory41", "29", "offline"),
                               ("memory2", "2", "offline")):
        (memory / name).mkdir(parents=True)
        (memory / name / "phys_index").write_text(f"{index}\n")
        (memory / name / "state").write_text(f"{state}\n")
    (memory / "block_size_bytes").write_text("8000000\n")
    ranges = tmp_path / "vmem"
    ranges.write_text("0000000140000000 000000014fffffff System RAM (virtio_mem)\n")
    out = shell_with_cmdline(f"MEMORY={memory}\noffline_blocks {ranges}", tmp_path)
    assert out.splitlines() == ["memory41 is offline"]  # memory2 is not the device's


# -- the vmcore reader ----------------------------------------------------------------------


def elf_core(path: Path, loads: list[tuple[int, bytes]]) -> None:
    """A minimal ELF64 core: one PT_LOAD per (physical address, data)."""
    phoff, data_off = 64, 4096
    header = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, 64, 56, len(loads), 0,
                            0, 0))
    phdrs, body, offset = b"", b"", data_off
    for paddr, data in loads:
        phdrs += struct.pack("<IIQQQQQQ", 1, 0, offset, paddr, paddr, len(data), len(data), 0)
        body += data
        offset += len(data)
    image = header + phdrs
    path.write_bytes(image + bytes(data_off - len(image)) + body)


@pytest.fixture(scope="module")
def vmcore_read(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is not installed (make setup installs it)")
    return helper_binary(tmp_path_factory.mktemp("cache"), OVERLAY, "x86_64", VMCORE_SOURCE)


def test_vmcore_reader_lists_pt_loads_and_reads_across_them(vmcore_read: Path,
                                                             tmp_path: Path) -> None:
    core = tmp_path / "vmcore"
    elf_core(core, [(0x100000, b"\x01" * 4096 + bytes(4096)), (0x102000, bytes(8192))])
    phdrs = subprocess.run([vmcore_read, "-f", core, "phdrs"], capture_output=True, text=True,
                           check=True).stdout
    assert phdrs.splitlines() == ["0000000000100000 0000000000101fff PT_LOAD",
                                  "0000000000102000 0000000000103fff PT_LOAD"]
    read = subprocess.run([vmcore_read, "-f", core, "read", "101000", "103fff"],
                          capture_output=True, text=True, check=False)
    assert read.returncode == 0, read.stderr
    assert "0x3000 of 0x3000 bytes" in read.stdout and "0 pages not zero" in read.stdout
    # a range the dump does not hold completely is a failure
    gap = subprocess.run([vmcore_read, "-f", core, "read", "100000", "104fff"],
                         capture_output=True, text=True, check=False)
    assert gap.returncode == 1 and "0x4000 of 0x5000 bytes" in gap.stdout
    assert "1 pages not zero" in gap.stdout


def test_vmcore_reader_rejects_what_is_not_an_elf64_core(vmcore_read: Path,
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"not an ELF file at all" * 10)
    proc = subprocess.run([vmcore_read, "-f", bad, "phdrs"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1 and "not an ELF64 core" in proc.stderr


# -- the self-contained initramfs -----------------------------------------------------------


def test_initramfs_holds_itself_for_the_next_kernel(tmp_path: Path) -> None:
    entries = [*ir.base_layout(), ir.regular("init", b"#!/bin/sh\n", executable=True)]
    archive = ir.write_archive(entries, tmp_path / "initrd.cpio", inner="boot/initrd.cpio")
    root = tmp_path / "root"
    root.mkdir()
    # what the kernel does with concatenated archives: unpack one after the other
    data = archive.read_bytes()
    first = ir.newc_archive(entries)
    assert data.startswith(first)
    for part in (first, data[len(first):]):
        subprocess.run(["cpio", "-id", "--quiet"], input=part, cwd=root, check=True)
    assert (root / "boot" / "initrd.cpio").read_bytes() == first
    assert (root / "init").read_bytes() == b"#!/bin/sh\n"


# -- host verdicts on a dump ----------------------------------------------------------------

CAPTURE_TAP = """\
TAP version 13
1..3
# vmtest-range virtio_mem 0x140000000-0x14fffffff System RAM (virtio_mem)
# vmtest-range virtio_mem 0x150000000-0x15fffffff System RAM (virtio_mem)
ok 1 kdump_load.iomem_virtio_mem
# vmtest-range vmcore_pt_load 0x1000-0x9ffff PT_LOAD
# vmtest-range vmcore_pt_load 0x140000000-0x14fffffff PT_LOAD
# vmtest-range device 0x140000000-0x17fffffff device
ok 2 kdump_load.vmcore_covers_virtio_mem
ok 3 kdump_load.vmcore_reads_plugged
"""


def test_host_finds_a_plugged_block_the_dump_does_not_cover() -> None:
    parsed = ktap.parse(CAPTURE_TAP)
    covers = parsed.results[1]
    verdict, findings = host_verdict(parsed, covers)
    assert verdict == "fail"
    assert findings == ["virtio-mem 0x150000000-0x15fffffff System RAM (virtio_mem) is not "
                        "dumped from 0x150000000 on"]
    assert compare(covers.name, covers, None, parsed).status == "fail"


def test_backing_usage_must_equal_what_is_plugged() -> None:
    reads = ktap.parse(CAPTURE_TAP).results[2]
    exact = [Usage("kdump_load", 200 * MIB, 200 * MIB)]
    assert usage_verdict(reads, exact) == ("pass", [])
    touched = [Usage("kdump_load", 256 * MIB, 200 * MIB)]
    status, findings = usage_verdict(reads, touched)
    assert status == "fail" and "touched 56.0 MiB of unplugged device memory" in findings[0]
    short = [Usage("kdump_load", 100 * MIB, 200 * MIB)]
    assert "only 100.0 of 200 MiB plugged were read" in usage_verdict(reads, short)[1][0]
    assert usage_verdict(reads, [])[0] == "fail"  # no measurement is no pass


def test_reboot_checks_use_the_device_region_they_printed() -> None:
    tap = """\
TAP version 13
1..1
# vmtest-range virtio_mem 0x140000000-0x17fffffff device
# vmtest-range boot_memmap 0x100000-0x1ffdffff e820 usable
# vmtest-range boot_memmap 0x140000000-0x147ffffff e820 usable
ok 1 kexec_load_reboot.memmap_excludes_virtio_mem
"""
    parsed = ktap.parse(tap)
    verdict, findings = host_verdict(parsed, parsed.results[0])
    assert verdict == "fail" and "0x140000000-0x147ffffff e820 usable overlaps" in findings[0]


def test_only_the_announced_sysrq_panic_is_forgiven() -> None:
    sysrq = Problem("kernel panic", "Kernel panic - not syncing: sysrq triggered crash")
    other = Problem("kernel panic", "Kernel panic - not syncing: Fatal exception")
    warn = Problem("WARNING", "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:1 x")
    announced = ["the guest crashes on purpose: kdump_load"]
    assert unannounced((sysrq, warn), announced) == (warn,)
    assert unannounced((sysrq,), []) == (sysrq,)
    assert unannounced((other,), announced) == (other,)
    assert unannounced((sysrq, sysrq), announced) == (sysrq,)


# -- mutants --------------------------------------------------------------------------------


def test_every_mutant_names_its_scenarios_and_the_checks_it_kills() -> None:
    mutants = load_mutants()
    assert {m.name for m in mutants} >= {"memmap-entry-for-driver-managed",
                                         "vmcore-callback-disabled", "crash-hotplug-not-updated"}
    scenario_names = {s.name for s in SCENARIOS}
    for m in mutants:
        assert set(m.scenarios) <= scenario_names, m.name
        # a mutant can only kill checks of the scenarios it runs
        phases = {k.split(".")[0] for k in m.kills}
        assert phases, m.name
        assert "mutant" not in m.subject.split(":")[0], m.subject


def test_a_mutant_without_kills_is_a_one_line_error(tmp_path: Path) -> None:
    patch = tmp_path / "bad.patch"
    patch.write_text("From: x <x@x>\nSubject: [PATCH] nothing\n\nScenarios: kexec\n---\n")
    with pytest.raises(KseriesError, match=r"at least one 'Kills: PHASE\.CHECK'"):
        load_mutant(patch)


def test_kill_table_and_a_mutant_that_survives() -> None:
    [memmap] = [m for m in load_mutants() if m.name == "memmap-entry-for-driver-managed"]
    series = {"boot.memmap_excludes_virtio_mem": "pass", "boot.kexec_load_memmap": "pass",
              "kexec_load_reboot.memmap_excludes_virtio_mem": "pass",
              "kexec_load_reboot.iomem_no_plain_ram_in_device": "pass",
              "boot.kexec_file_segments": "pass", "boot.mem_on_off_test": "skip"}
    killed = MutantRun(memmap, {k: "fail" for k in memmap.kills} | {
        "boot.kexec_file_segments": "pass"})
    table = kill_table(series, [killed])
    assert table["boot.memmap_excludes_virtio_mem"] == [memmap.name]
    assert table["boot.kexec_file_segments"] == [] and "boot.mem_on_off_test" not in table
    checks = {c.name: c for c in mutant_checks("x86_64", series, [killed])}
    assert checks[f"x86_64.mutant.{memmap.name}"].status == "pass"
    assert checks["x86_64.mutant table"].status == "warn"
    assert "no mutant yet for: boot.kexec_file_segments" in checks["x86_64.mutant table"].summary
    survived = MutantRun(memmap, {k: "pass" for k in memmap.kills})
    check = mutant_checks("x86_64", series, [survived])[0]
    assert check.status == "fail" and "did not kill boot.memmap_excludes_virtio_mem" in \
        check.summary


# -- arm64: device tree and memblock instead of e820 ----------------------------------------


def test_device_tree_memory_and_plain_memblock(tmp_path: Path) -> None:
    node = tmp_path / "dt" / "memory@40000000"
    node.mkdir(parents=True)
    (node / "reg").write_bytes(struct.pack(">QQ", 0x40000000, 0x20000000))
    memblock = tmp_path / "debug" / "memblock"
    memblock.mkdir(parents=True)
    (memblock / "memory").write_text(
        "   0: 0x0000000040000000..0x000000005fffffff    0 NONE\n"
        "   1: 0x0000000100000000..0x0000000107ffffff    0 DRV_MNG\n"
        "   2: 0x0000000108000000..0x000000010fffffff    0 HOTPLUG\n")
    out = shell_with_cmdline(f"DEVICE_TREE={tmp_path}/dt DEBUGFS={tmp_path}/debug\n"
                             "dt_memory; echo --; plain_memblock", tmp_path)
    dt, plain = out.split("--\n")
    assert dt.splitlines() == ["0000000040000000 000000005fffffff dt memory@40000000"]
    # driver-managed memory is flagged: only what is not counts as the next kernel's RAM
    assert plain.splitlines() == ["0000000040000000 000000005fffffff memblock NONE",
                                  "0000000108000000 000000010fffffff memblock HOTPLUG"]


def test_known_user_space_limits_warn_instead_of_failing() -> None:
    assert known_limit("arm64", "boot.kdump_dumps_virtio_mem") is not None
    assert known_limit("arm64", "kdump_load.vmcore_covers_virtio_mem") is not None
    assert known_limit("arm64", "kdump_file.vmcore_covers_virtio_mem") is None
    assert known_limit("x86_64", "boot.kdump_dumps_virtio_mem") is None
    parsed = ktap.parse(CAPTURE_TAP)
    failing = compare("arm64.kdump_load.vmcore_covers_virtio_mem", parsed.results[1], None,
                      parsed)
    assert failing.status == "fail"
    warned = as_known(failing, "kexec-tools")
    assert warned.status == "warn" and warned.summary.startswith("known limitation")
    passing = compare("x", parsed.results[0], None, parsed)
    assert as_known(passing, "kexec-tools") == passing  # a pass stays a pass


def test_a_broken_chain_fails_every_result_still_planned(tmp_path: Path) -> None:
    out = shell_with_cmdline("PLAN=5 test_number=3 failed=0\n"
                             "fail_rest 'kexec_load_reboot: kexec -e returned: EINVAL'\n"
                             "echo failed=$failed", tmp_path)
    assert out.splitlines() == [
        "# kexec_load_reboot: kexec -e returned: EINVAL",
        "not ok 4 chain_broken.result_4 # kexec_load_reboot: kexec -e returned: EINVAL",
        "not ok 5 chain_broken.result_5 # kexec_load_reboot: kexec -e returned: EINVAL",
        "failed=1"]
    parsed = ktap.parse("TAP version 13\n1..5\nok 1 a\nok 2 b\nok 3 c\n" + "\n".join(
        out.splitlines()[1:3]) + "\n")
    assert parsed.complete and [r.outcome for r in parsed.results][3:] == ["fail", "fail"]
