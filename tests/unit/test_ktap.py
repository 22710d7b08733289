"""ktap.py: the one KTAP parser (Documentation/dev-tools/ktap.rst), flat TAP as our vmtest
guest prints it and nested KUnit output as a kernel console shows it."""

from __future__ import annotations

import pytest

from kseries.kernel import ktap

# The shape lib/kunit/test.c prints on a serial console: printk timestamps, 4-space
# subtests with their own version, "# Subtest:", attribute and plan lines, multi-line
# expectation failures, kernel noise in between, a parameterised case with a third level,
# per-suite totals and the suite's result at the top.
KUNIT_CONSOLE = """\
[    0.000000] Linux version 6.12.117 (root@host) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP
[    0.812345] Run /init as init process
[    1.100000] KTAP version 1
[    1.100001] 1..2
[    1.100002]     KTAP version 1
[    1.100003]     # Subtest: memory_hotplug_driver_managed
[    1.100004]     # module: memory_hotplug_kunit
[    1.100005]     1..4
[    1.200000]     # dm_flag_resource_and_removal: range [0x100000000-0x107ffffff], node 0
[    1.200001]     ok 1 dm_flag_resource_and_removal
[    1.300000]     # no_flag_firmware_memmap: EXPECTATION FAILED at mm/memory_hotplug_kunit.c:433
[    1.300001]     Expected memmap.exact_ram == 1U, but
[    1.300002]         memmap.exact_ram == 0 (0x0)
[    1.300003] ACPI: \\_SB_.PCI0: some unrelated kernel message
[    1.300004]     not ok 2 no_flag_firmware_memmap
[    1.400000]     ok 3 dm_memblock_flag # SKIP CONFIG_ARCH_KEEP_MEMBLOCK is not set
[    1.500000]         KTAP version 1
[    1.500001]         # Subtest: dm_sizes
[    1.500002]         ok 1 128M
[    1.500003]         ok 2 256M
[    1.500004]     # dm_sizes.speed: slow
[    1.500005]     # dm_sizes: pass:2 fail:0 skip:0 total:2
[    1.500006]     ok 4 dm_sizes
[    1.500007] # memory_hotplug_driver_managed: pass:2 fail:1 skip:1 total:4
[    1.500008] # Totals: pass:3 fail:1 skip:1 total:5
[    1.500009] not ok 1 memory_hotplug_driver_managed
[    1.600000]     KTAP version 1
[    1.600001]     # Subtest: second_suite
[    1.600002]     1..1
[    1.600003]     ok 1 only_case
[    1.600004] ok 2 second_suite
"""


def statuses(results: tuple[ktap.TestResult, ...]) -> list[tuple[str, str]]:
    return [(r.name, r.status) for r in results]


def test_flat_tap_results_plan_and_diagnostics_before_each_result() -> None:
    parsed = ktap.parse("TAP version 13\n1..2\n# about one\n# more\nok 1 one\n"
                        "not ok 2 - two\n# after the last\n")
    assert parsed.version_seen and parsed.planned == 2 and parsed.complete
    assert statuses(parsed.results) == [("one", "pass"), ("two", "fail")]
    assert parsed.results[0].diagnostics == ("about one", "more")
    assert parsed.results[1].number == 2 and parsed.results[1].diagnostics == ()
    assert parsed.trailing == ("after the last",)
    assert parsed.result("two") is parsed.results[1] and parsed.result("three") is None


@pytest.mark.parametrize(("line", "status", "outcome", "reason"), [
    ("ok 1 t # SKIP no hotplug", "skip", "skip", "no hotplug"),
    ("not ok 1 t # SKIP no hotplug", "skip", "skip", "no hotplug"),
    ("ok 1 t # skipped: no hotplug", "skip", "skip", "no hotplug"),
    ("not ok 1 t # TODO not written yet", "todo", "skip", "not written yet"),
    ("ok 1 t # XFAIL known to fail", "xfail", "pass", "known to fail"),
    ("not ok 1 t # TIMEOUT 30 seconds", "timeout", "error", "30 seconds"),
    ("not ok 1 t # ERROR could not mount debugfs", "error", "error", "could not mount debugfs"),
    ("ok 1 t # rcode=0", "pass", "pass", "rcode=0"),
    ("not ok 1 t # UNKNOWN directive", "fail", "fail", "UNKNOWN directive"),
    ("ok 1 t", "pass", "pass", ""),
])
def test_directives(line: str, status: str, outcome: str, reason: str) -> None:
    [result] = ktap.parse(f"KTAP version 1\n1..1\n{line}\n").results
    assert (result.name, result.status, result.outcome, result.reason) == (
        "t", status, outcome, reason)


def test_a_failure_without_a_reason_takes_its_last_diagnostic() -> None:
    [result] = ktap.parse("1..1\n# kexec -l failed (exit 1)\nnot ok 1 kexec\n").results
    assert result.reason == "kexec -l failed (exit 1)"


def test_missing_results_and_noise() -> None:
    parsed = ktap.parse("TAP version 13\n1..3\nok 1 a\n[  2.0] random console noise\n")
    assert not parsed.complete and parsed.missing() == 2
    assert parsed.results[0].diagnostics == () and parsed.trailing == ()
    unplanned = ktap.parse("ok 1 a\n")
    assert not unplanned.version_seen and not unplanned.complete and unplanned.missing() == 0


def test_bail_out() -> None:
    parsed = ktap.parse("KTAP version 1\n1..3\nok 1 a\nBail out! no /dev/kvm\n")
    assert parsed.bail_out == "no /dev/kvm" and parsed.missing() == 2
    assert ktap.parse("1..1\nBail out!\n").bail_out == "bail out"
    assert ktap.parse("1..1\nok 1 a\n").bail_out is None


def test_nesting_as_in_the_spec_two_spaces() -> None:
    text = ("KTAP version 1\n1..2\n  KTAP version 1\n  1..2\n    KTAP version 1\n    1..2\n"
            "    not ok 1 test_1\n    ok 2 test_2\n  not ok 1 test_3\n  ok 2 test_4 # SKIP\n"
            "not ok 1 example_test_1\nok 2 example_test_2\n")
    parsed = ktap.parse(text)
    assert parsed.complete and statuses(parsed.results) == [("example_test_1", "fail"),
                                                            ("example_test_2", "pass")]
    first = parsed.results[0]
    assert statuses(first.children) == [("test_3", "fail"), ("test_4", "skip")]
    assert statuses(first.children[0].children) == [("test_1", "fail"), ("test_2", "pass")]
    assert parsed.results[1].children == ()


def test_subtest_line_names_a_subtest_and_tabs_indent() -> None:
    parsed = ktap.parse("TAP version 14\n1..1\n\t# Subtest: s\n\t1..2\n\tok 1 - a\n"
                        "\tok 2 - b # SKIP no hotplug here\nok 1 - s\n")
    [suite] = parsed.results
    assert suite.name == "s" and statuses(suite.children) == [("a", "pass"), ("b", "skip")]
    assert suite.children[1].reason == "no hotplug here"


def test_a_subtest_line_outside_a_subtest_is_only_a_diagnostic() -> None:
    [result] = ktap.parse("1..1\n# Subtest: stray\nok 1 a\n").results
    assert result.diagnostics == ("Subtest: stray",) and result.children == ()


def test_kunit_console() -> None:
    parsed = ktap.parse(KUNIT_CONSOLE)
    assert parsed.version_seen and parsed.complete and parsed.unfinished is None
    assert statuses(parsed.results) == [("memory_hotplug_driver_managed", "fail"),
                                        ("second_suite", "pass")]
    suite = parsed.results[0]
    assert statuses(suite.children) == [
        ("dm_flag_resource_and_removal", "pass"), ("no_flag_firmware_memmap", "fail"),
        ("dm_memblock_flag", "skip"), ("dm_sizes", "pass")]
    passed, failed, skipped, sizes = suite.children
    assert passed.diagnostics == (
        "dm_flag_resource_and_removal: range [0x100000000-0x107ffffff], node 0",)
    # the continuation lines belong to the case, the kernel's own message does not
    assert failed.diagnostics == (
        "no_flag_firmware_memmap: EXPECTATION FAILED at mm/memory_hotplug_kunit.c:433",
        "Expected memmap.exact_ram == 1U, but", "memmap.exact_ram == 0 (0x0)")
    assert skipped.reason == "CONFIG_ARCH_KEEP_MEMBLOCK is not set"
    assert statuses(sizes.children) == [("128M", "pass"), ("256M", "pass")]
    assert sizes.diagnostics == ("dm_sizes: pass:2 fail:0 skip:0 total:2",)  # no attribute
    assert suite.diagnostics == ("memory_hotplug_driver_managed: pass:2 fail:1 skip:1 total:4",
                                 "Totals: pass:3 fail:1 skip:1 total:5")
    assert statuses(parsed.results[1].children) == [("only_case", "pass")]


def test_a_console_that_ends_inside_a_suite_keeps_what_arrived() -> None:
    """The kernel crashed in case 3: the suite has no result line, its cases still count."""
    cut = KUNIT_CONSOLE[:KUNIT_CONSOLE.index("[    1.400000]")]
    cut += "[    1.400000] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    parsed = ktap.parse(cut)
    assert parsed.results == () and not parsed.complete and parsed.missing() == 2
    suite = parsed.unfinished
    assert suite is not None and suite.name == "memory_hotplug_driver_managed"
    assert (suite.number, suite.status, suite.outcome) == (1, "error", "error")
    assert "output ended" in suite.reason
    assert statuses(suite.children) == [("dm_flag_resource_and_removal", "pass"),
                                        ("no_flag_firmware_memmap", "fail")]
    assert parsed.tests() == (suite,)


def test_printk_prefixes_are_stripped() -> None:
    assert ktap.strip_printk("[    1.234567] ok 1 a\r\n") == "ok 1 a"
    assert ktap.strip_printk("[    1.234567][    T1]     ok 1 a") == "    ok 1 a"
    assert ktap.strip_printk("[not a time] ok") == "[not a time] ok"


def test_results_are_frozen() -> None:
    parsed = ktap.parse("1..1\nok 1 a\n")
    assert isinstance(parsed, ktap.Ktap)
    with pytest.raises(AttributeError):
        parsed.results[0].status = "fail"  # type: ignore[misc]
