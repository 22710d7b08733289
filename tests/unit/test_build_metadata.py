"""metadata.json in tuxmake's shape, written by the build stage's summary for each arch: read
back as tuxmake's own reader expects it (group -> key -> value, two levels), with the groups
tuxmake has, every path relative to its directory, and ccache's counters from the real
`ccache --print-stats`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kseries.core.context import Context, Options, make_context
from kseries.kernel.arches import get_arch
from kseries.kernel.kwarn import Diagnostic
from kseries.series.apply import AppliedPatch, ApplyResult
from kseries.stages.build.coverage import ArchSetup, Cell
from kseries.stages.build.execute import ArchRun, BaseCache
from kseries.stages.build.make import ResultCache, StepResult
from kseries.stages.build.metadata import (
    ccache_counts,
    ccache_group,
    compiler_group,
    parse_ccache_stats,
)
from kseries.stages.build.options import BuildOptions
from kseries.stages.build.plan import Plan, Target
from kseries.stages.build.summary import summarise
from tests.conftest import git

CCACHE_STATS = ("autoconf_test\t0\ncache_miss\t6427\ndirect_cache_hit\t13447\n"
                "preprocessed_cache_hit\t8\nstats_updated_timestamp\t1764810000\n"
                "not a counter line\n")
GCC = "aarch64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
WARNING = Diagnostic("mm/a.c", 12, 5, "warning", "unused variable 'x'", "-Wunused-variable",
                     obj="mm/a.o", tool="gcc")


def read_like_tuxmake(path: Path) -> dict[str, dict[str, Any]]:
    """What tuxmake's reader relies on: a JSON object of groups, each a JSON object whose
    values are scalars or lists of scalars; and, ours, no absolute path anywhere."""
    metadata = json.loads(path.read_text())
    assert isinstance(metadata, dict)
    for group, items in metadata.items():
        assert isinstance(items, dict), group
        for key, value in items.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                assert item is None or isinstance(item, str | int | float | bool), \
                    (group, key, value)
                assert not (isinstance(item, str) and item.startswith("/")), (group, key, item)
    return metadata


def context(tmp_path: Path) -> Context:
    return make_context(Options(series_file=None, cache_dir=tmp_path / "cache", tree=None,
                                revision="v3", mbox=None, out=tmp_path / "out"))


def applied_in(repo: Path) -> ApplyResult:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "tag", "v6.12")
    (repo / "mm" / "a.c").write_text("int changed;\n")
    git(repo, "commit", "-q", "-am", "mm: change a")
    head = git(repo, "rev-parse", "HEAD")
    return ApplyResult(repo, "kseries/mhp/v3", base, head, (AppliedPatch(1, "mm: change a",
                                                                         head),),
                       False, (), "git am")


def arch_run(tmp_path: Path, applied: ApplyResult) -> ArchRun:
    """arm64: mm/a.c built (a new warning at patch 1), drivers/x.c not buildable."""
    build_dir = tmp_path / "cache" / "build" / "series-arm64"
    out_dir = tmp_path / "out" / "build" / "arm64"
    build_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True)
    (out_dir / "config").write_text("CONFIG_MEMORY_HOTPLUG=y\n")
    setup = ArchSetup(get_arch("arm64"), build_dir, out_dir, build_dir / ".config", (),
                      (tmp_path / "Kconfig.fragments" / "common.config",), GCC, 1.5,
                      {"mm/a.c": Cell("buildable", "CONFIG_MEMORY_HOTPLUG"),
                       "drivers/x.c": Cell("not-buildable", "CONFIG_X depends on X86")})
    run = ArchRun(setup, BaseCache(build_dir / "base.json", "key"), ResultCache(build_dir))
    base = StepResult("arm64", "base", applied.base, ("mm/a.o",), (), (), 2.0,
                      str(out_dir / "base.log"), "make")
    run.cache.record(base)
    run.base_step = base
    run.base_objects = ("mm/a.o",)
    run.steps.append(StepResult("arm64", "patch-1", applied.head, ("mm/a.o",), (), (WARNING,),
                                3.25, str(out_dir / "patch-1.log"), "make"))
    return run


CcacheSpan = tuple[dict[str, int] | None, dict[str, int] | None]


@pytest.fixture
def ccache_span() -> dict[str, CcacheSpan]:
    return {}


@pytest.fixture
def metadata(tmp_path: Path, small_repo: Path,
             ccache_span: dict[str, CcacheSpan]) -> dict[str, dict[str, Any]]:
    """The build stage's summary of one arm64 run; CCACHE_SPAN gets ccache's counters
    before and after it."""
    applied = applied_in(small_repo)
    run = arch_run(tmp_path, applied)
    plan = Plan((Target("mm/a.c", "mm/a.o", "touched"),
                 Target("drivers/x.c", "drivers/x.o", "calls add_memory")), (), {}, (), ())
    before = ccache_counts()
    stage = summarise(context(tmp_path), applied, plan, [run],
                      BuildOptions((get_arch("arm64"),), sparse=False), 7.0, before)
    ccache_span["span"] = (before, ccache_counts())
    assert stage.status == "fail"  # the new warning
    return read_like_tuxmake(tmp_path / "out" / "build" / "arm64" / "metadata.json")


def test_metadata_has_tuxmakes_groups_in_two_levels(metadata: dict[str, dict[str, Any]],
                                                    small_repo: Path) -> None:
    assert {"build", "results", "compiler", "git", "source", "kseries", "objects",
            "coverage"} <= set(metadata)
    build = metadata["build"]
    assert build["targets"] == ["config", "base", "patch-1"]
    assert build["target_arch"] == "arm64" and build["kernel_arch"] == "arm64"
    assert build["toolchain"] == "gcc" and build["wrapper"] == "ccache"
    assert build["cross_compile"] == "aarch64-linux-gnu-"
    assert build["kconfig"] == "defconfig" and build["kconfig_add"] == ["common.config"]
    assert build["config"] == "config" and build["make_variables"] == ["W=1"]
    assert isinstance(build["jobs"], int) and build["jobs"] >= 1
    assert build["reproducer_cmdline"] == ["kseries", "build", "--revision", "v3", "--arch",
                                           "arm64"]
    assert build["status"] == "FAIL" and build["duration"] == 6.75
    assert metadata["compiler"] == {"name": "gcc", "version": "12.2.0", "version_full": GCC}
    head = git(small_repo, "rev-parse", "HEAD")
    assert metadata["git"] == {"git_describe": "v6.12-1-g" + head[:7],
                               "git_branch": "kseries/mhp/v3", "git_commit": head}
    assert metadata["source"] == {"kernelversion": "6.12.0", "tree": "default",
                                  "package": "linux-source-6.12",
                                  "package_version": "6.12.117-1~deb12u1",
                                  "upstream_version": "6.12.117"}


def test_results_flatten_targets_and_paths_are_relative(
        metadata: dict[str, dict[str, Any]]) -> None:
    results = metadata["results"]
    assert results["status"] == "FAIL"
    assert results["config_status"] == "PASS" and results["base_status"] == "PASS"
    assert results["patch-1_status"] == "FAIL" and results["patch-1_duration"] == 3.25
    assert results["patch-1_log"] == "patch-1.log" and results["config_log"] == "config.log"
    assert results["warnings"] == 1 and results["errors"] == 0
    assert results["warning_list"] == ["mm/a.c:12:5: warning: unused variable 'x' "
                                       "[-Wunused-variable]"]
    assert metadata["objects"] == {"mm/a.o": ["patch-1:PASS"]}
    assert metadata["coverage"] == {"mm/a.c": "buildable: CONFIG_MEMORY_HOTPLUG",
                                    "drivers/x.c": "not-buildable: CONFIG_X depends on X86"}
    assert metadata["kseries"]["series"] == "mhp-driver-managed"
    assert metadata["kseries"]["revision"] == "v3"


def test_ccache_group_counts_this_runs_hits_and_misses(
        metadata: dict[str, dict[str, Any]], ccache_span: dict[str, CcacheSpan]) -> None:
    """Hits are ccache's direct plus preprocessed hits, misses its cache_miss counter; the
    build stage reports what changed while it ran (the real ccache, when installed)."""
    counts = parse_ccache_stats(CCACHE_STATS)
    assert counts["direct_cache_hit"] == 13447 and "not a counter line" not in counts
    assert ccache_group(None, counts) == {"cache_hits": 13455, "cache_misses": 6427,
                                          "scope": "cumulative"}
    assert ccache_group({"direct_cache_hit": 13000, "preprocessed_cache_hit": 8,
                         "cache_miss": 6400}, counts)["cache_hits"] == 447
    assert ccache_group({}, None) == {}
    before, after = ccache_span["span"]
    if shutil.which("ccache") is None:
        assert before is None and "ccache" not in metadata
        return
    # The real counters (other builds on this machine may use the cache meanwhile).
    assert before is not None and after is not None and "cache_miss" in after
    assert metadata["ccache"]["scope"] == "this build stage, every arch"
    most = ccache_group(before, after)
    assert 0 <= metadata["ccache"]["cache_hits"] <= int(str(most["cache_hits"]))
    assert 0 <= metadata["ccache"]["cache_misses"] <= int(str(most["cache_misses"]))


def test_compiler_version_from_the_first_line() -> None:
    assert compiler_group("gcc (GCC) 14.1.1 20240720")["version"] == "14.1.1"
    assert compiler_group("gcc (Debian 12.2.0-14) 12.2.0")["version"] == "12.2.0"
    assert compiler_group("unknown")["version"] == "unknown"


def test_no_absolute_path_of_this_machine(tmp_path: Path, small_repo: Path) -> None:
    applied = applied_in(small_repo)
    run = arch_run(tmp_path, applied)
    plan = Plan((Target("mm/a.c", "mm/a.o", "touched"),), (), {}, (), ())
    ctx = make_context(Options(series_file=Path("patches/series.toml").resolve(),
                               cache_dir=tmp_path / "cache", tree=small_repo, revision="v3",
                               mbox=None, out=tmp_path / "out"))
    summarise(ctx, applied, plan, [run], BuildOptions((get_arch("arm64"),), sparse=False), 1.0)
    path = tmp_path / "out" / "build" / "arm64" / "metadata.json"
    text = path.read_text()
    assert str(tmp_path) not in text and '"/' not in text
    metadata = read_like_tuxmake(path)
    assert metadata["source"]["tree"] == "user" and "package" not in metadata["source"]
    words = metadata["build"]["reproducer_cmdline"]
    tree = words[words.index("--tree") + 1]
    assert (path.parent / tree).resolve() == small_repo.resolve()
    series = words[words.index("--series") + 1]
    assert os.path.samefile(path.parent / series, "patches/series.toml")
