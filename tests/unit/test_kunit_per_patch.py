"""kseries kunit --every-commit: the per-patch verdict from runs at base, each patch and head."""

from __future__ import annotations

import argparse

from kseries.series.apply import AppliedPatch
from kseries.stages.kunit import stage as kunit
from kseries.stages.kunit import verdicts
from kseries.stages.kunit.results import CaseResult
from kseries.stages.kunit.stage import KunitOptions
from kseries.stages.kunit.verdicts import KunitRun, progression_check

CASES = ("a", "b", "c")


def run(variant: verdicts.Variant, patch: int, passing: set[str], arch: str = "x86_64",
        outcome: verdicts.Outcome | None = None) -> KunitRun:
    cases = tuple(CaseResult("s", n, "pass" if n in passing else "fail") for n in CASES)
    done = outcome or ("passed" if passing == set(CASES) else "failed")
    return KunitRun(arch, variant, done, "", cases, patch=patch)


def test_each_patch_is_credited_with_the_cases_it_makes_pass() -> None:
    runs = [run("base", 0, {"a"}), run("commit", 1, {"a", "b"}), run("commit", 2, {"a", "b"}),
            run("series", 3, {"a", "b", "c"})]
    check = progression_check("x86_64", runs, "kseries kunit --every-commit")
    assert check.status == "pass"
    assert check.summary == "newly passing from the base: patch 1: b; patch 2: -; patch 3: c"
    assert check.data["fixed_by_patch"] == {"1": ["b"], "2": [], "3": ["c"]}


def test_a_case_that_passed_and_fails_later_fails_the_check() -> None:
    runs = [run("base", 0, set()), run("commit", 1, {"a", "b"}), run("series", 2, {"a"})]
    check = progression_check("x86_64", runs, "")
    assert check.status == "fail"
    assert check.summary == "passed earlier, fails later: b at patch 2"


def test_a_patch_where_the_suite_does_not_build_fails_the_check() -> None:
    runs = [run("commit", 1, set(), outcome="build-failed"), run("series", 2, set(CASES))]
    check = progression_check("x86_64", runs, "")
    assert check.status == "fail" and "x86_64 at patch 1" in check.summary


def test_without_a_base_run_patch_1_is_credited_with_what_passes_there() -> None:
    runs = [run("commit", 1, {"a"}), run("series", 2, set(CASES)),
            run("series", 2, set(), arch="powerpc")]
    check = progression_check("x86_64", runs, "")
    assert check.summary == "newly passing from patch 1: patch 1: a; patch 2: b, c"


def test_the_option_round_trips_through_the_reproducer() -> None:
    options = KunitOptions(("x86_64", "powerpc"), (), every_commit=True)
    parser = argparse.ArgumentParser()
    kunit.configure_parser(parser)
    args = parser.parse_args(kunit.options_to_args(options))
    assert kunit.options_from_args(args, None) == options  # type: ignore[arg-type]


def test_steps_put_every_patch_but_the_last_between_base_and_head() -> None:
    patches = tuple(AppliedPatch(i, f"p{i}", f"c{i}") for i in (1, 2, 3))
    applied = type("A", (), {"base": "b0", "head": "c3", "patches": patches})()
    steps = kunit.steps(applied, KunitOptions(("x86_64",), ("x86_64",), every_commit=True))
    assert [(v, n, c) for v, n, c, _ in steps] == [("base", 0, "b0"), ("commit", 1, "c1"),
                                                    ("commit", 2, "c2"), ("series", 3, "c3")]


def test_a_commit_for_another_arch_is_not_run_and_the_next_patch_compares_with_the_last() -> None:
    same = KunitRun("x86_64", "commit", "same-as-before", "changes only arch/powerpc/: ...",
                    patch=1)
    runs = [run("base", 0, {"a"}), same, run("commit", 2, {"a", "b"}), run("series", 3, {"a", "b"})]
    check = progression_check("x86_64", runs, "")
    assert check.status == "pass", check.summary
    assert check.data["fixed_by_patch"] == {"2": ["b"], "3": []}
    assert check.data["same_as_before"] == ["x86_64 at patch 1"]
    assert verdicts.stage_summary([same], []) == \
        "x86_64 at patch 1: not run again (changes only arch/powerpc/)"
