"""Reproducers round-trip: the recorded command, parsed by the CLI, gives the same options."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from kseries.cli import build_parser, options_from, verify_plan
from kseries.core.context import Context, Options, make_context
from kseries.kernel.arches import get_arch
from kseries.stages.build.stage import BuildOptions
from kseries.stages.callers.stage import CallersOptions
from kseries.stages.checks.stage import ChecksOptions
from kseries.stages.kunit.stage import KunitOptions
from kseries.stages.registry import BY_NAME
from kseries.stages.vmtest.guest import VmOptions

SAMPLES: list[tuple[str, Any]] = [
    ("build", BuildOptions((get_arch("arm64"), get_arch("s390")), base=False, sparse=False)),
    ("build", BuildOptions((get_arch("x86_64"),))),
    ("callers", CallersOptions(spatch=False)),
    ("callers", CallersOptions()),
    ("checks", ChecksOptions(Path("/tmp/routing notes.md"))),
    ("checks", ChecksOptions()),
    ("kunit", KunitOptions(("x86_64", "arm64"), ("x86_64",))),
    ("kunit", KunitOptions(("powerpc",), ("powerpc",))),
    ("kunit", KunitOptions()),
    ("vmtest", VmOptions(base=False, accel="tcg", timeout_s=90.5,
                         phases=(("boot", 128), ("grow", 384)))),
    ("vmtest", VmOptions()),
    ("vmtest", VmOptions(mutants=True, only_mutants=("warn-at-probe",), every_commit=True,
                         scenarios=("kexec", "control"), more_arches=("arm64",))),
    ("vmtest", VmOptions(arch="arm64", scenarios=("kdump_file",))),
]


def context(**common: Any) -> Context:
    fields = {"series_file": None, "cache_dir": None, "tree": None, "revision": None,
              "mbox": None, "out": Path("out")} | common
    return make_context(Options(**fields))


@pytest.mark.parametrize(("name", "options"), SAMPLES)
@pytest.mark.parametrize("common", [{}, {"tree": Path("/src/linux"),
                                          "mbox": Path("/tmp/series v3.mbx")},
                                    {"mbox": Path("/tmp/thread.mbox"), "thread_revision": 1},
                                    {"revision": "v2"}])
def test_recorded_reproducer_parses_back_to_the_same_options(name: str, options: Any,
                                                             common: dict[str, Any]) -> None:
    stage = BY_NAME[name]
    ctx = context(**common)
    argv = shlex.split(stage.reproducer(ctx, options))
    assert argv[:2] == ["kseries", name]
    args = build_parser().parse_args(argv[1:])
    parsed = options_from(args)
    for key, value in common.items():
        assert getattr(parsed, key) == value
    assert stage.from_args(args, make_context(parsed)) == options


def test_verify_options_of_every_stage_round_trip() -> None:
    """What verify runs is what the stage's recorded reproducer runs."""
    ctx = context(mbox=Path("/tmp/x.mbx"))
    for planned in verify_plan(ctx, None, None):
        stage = planned.stage
        if stage.name in ("tree", "apply", "revisions"):
            continue
        args = build_parser().parse_args(shlex.split(stage.reproducer(ctx, planned.options))[1:])
        assert stage.from_args(args, ctx) == planned.options, stage.name


def test_verify_arch_selects_the_per_arch_options() -> None:
    ctx = context()
    planned = {p.stage.name: p.options for p in verify_plan(ctx, ["build", "kunit"], ["arm64"])}
    assert list(planned) == ["tree", "apply", "build", "kunit"]
    assert [a.name for a in planned["build"].arches] == ["arm64"]
    assert planned["kunit"] == KunitOptions(("arm64",), ())
