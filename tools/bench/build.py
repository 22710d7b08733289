"""make bench, build section: the build stage cold, warm and for a new revision, against the
naive bot (one full defconfig vmlinux per arch, time-boxed and extrapolated) and the floor."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

from kseries.core import git as g
from kseries.core.context import Context
from kseries.core.proc import ToolTimeout, run
from kseries.core.report import Stage
from kseries.kernel.arches import Arch, check_toolchain, get_arch, make_command
from kseries.kernel.kconfig import build_fragments, merge_config
from kseries.kernel.tree import Tree
from kseries.series.apply import (
    ApplyResult,
    apply_series,
    checkout,
    remove_worktree,
    scratch_branch,
)
from kseries.stages.build.make import run_make
from kseries.stages.build.options import WARN_FLAGS, BuildOptions
from kseries.stages.build.plan import diff_changes
from kseries.stages.build.run import run_build

BENCH_BOX_S = 120.0
# Who commits and sends the bench's made-up v3 (git here reads no ~/.gitconfig).
BENCH_IDENTITY = {"user.name": "kseries bench", "user.email": "bench@localhost"}
OBJECT_LINE_RE = re.compile(r"echo '  (?:CC|AS)(?: \[M\])? +(\S+\.o)'")


@contextmanager
def _ccache_dir(path: Path | None) -> Iterator[None]:
    """Point ccache (in every make we start) at PATH for a while; bench only."""
    old = os.environ.get("CCACHE_DIR")
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        os.environ["CCACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CCACHE_DIR", None)
        else:
            os.environ["CCACHE_DIR"] = old


def _timed_build(ctx: Context, tree: Tree, applied: ApplyResult, options: BuildOptions
                 ) -> tuple[float, Stage]:
    start = time.monotonic()
    stage = run_build(ctx, tree, applied, options)
    return round(time.monotonic() - start, 1), stage


def revised_series(worktree: Path, applied: ApplyResult, out: Path) -> Path:
    """A 'v3': the series with one more line of code in its last patch, as an mbox."""
    last = applied.patches[-1]
    checkout(worktree, last.commit)
    changed = next(p for p in diff_changes(worktree, f"{last.commit}^", last.commit)
                   if p.path.endswith(".c"))
    source = worktree / changed.path
    source.write_text(source.read_text() + "\nstatic int __maybe_unused kseries_bench_v3;\n")
    g.run_git(worktree, "commit", "-q", "-a", "--amend", "--no-edit", config=BENCH_IDENTITY)
    mbox = g.format_patch(worktree, "--cover-letter", "--thread", "-v3",
                          f"--base={applied.base}", f"{applied.base}..HEAD",
                          sender=(BENCH_IDENTITY["user.name"], BENCH_IDENTITY["user.email"]))
    mbox = mbox.replace("*** SUBJECT HERE ***", "kseries bench: a new revision").replace(
        "*** BLURB HERE ***", "One more line of code in the last patch.")
    checkout(worktree, applied.head)
    out.write_text(mbox + "\n")
    return out


def naive_arch(arch: Arch, worktree: Path, build_dir: Path, box_s: float) -> dict[str, Any]:
    """The naive bot for ARCH: defconfig + fragments, then a full vmlinux, time-boxed.

    Measured: config and prepare, then `make vmlinux` for BOX_S seconds (objects per second
    with an empty ccache), the same objects deleted and made again from ccache (the warm
    rate), and the number of objects the whole vmlinux needs (make -n). The full build is
    extrapolated."""
    start = time.monotonic()
    merge_config(worktree, build_dir, arch, build_fragments(arch))
    config_s = time.monotonic() - start
    start = time.monotonic()
    run_make(make_command(arch, worktree, build_dir, "prepare", extra=WARN_FLAGS),
             build_dir / "bench-prepare.log")
    prepare_s = time.monotonic() - start
    _, dry = run_make(make_command(arch, worktree, build_dir, "vmlinux",
                                   extra=(*WARN_FLAGS, "-n", "-k")), build_dir / "bench-dry.log")
    total = len(set(OBJECT_LINE_RE.findall(dry)))
    built, cold_s = _boxed_vmlinux(arch, worktree, build_dir, box_s)
    again, warm_s = _rebuild_from_ccache(arch, worktree, build_dir, built)
    cold_rate = len(built) / cold_s if built else 0.0
    warm_rate = len(again) / warm_s if again else 0.0
    return {
        "arch": arch.name, "objects_total": total, "config_s": round(config_s, 1),
        "prepare_s": round(prepare_s, 1), "box_s": round(cold_s, 1),
        "objects_in_box_cold": len(built), "objects_per_s_cold": round(cold_rate, 2),
        "objects_rebuilt_from_ccache": len(again), "rebuild_s": round(warm_s, 1),
        "objects_per_s_warm": round(warm_rate, 2),
        "extrapolated_cold_s": round(config_s + prepare_s + total / cold_rate, 1)
        if cold_rate else None,
        "extrapolated_warm_s": round(total / warm_rate, 1) if warm_rate else None,
    }


def _objects_in(build_dir: Path) -> set[str]:
    skip = ("scripts/", "tools/", "arch/x86/tools/", "arch/x86/boot/")
    found = {str(p.relative_to(build_dir)) for p in build_dir.rglob("*.o")}
    return {o for o in found if not o.startswith(skip)}


def _boxed_vmlinux(arch: Arch, worktree: Path, build_dir: Path, box_s: float
                   ) -> tuple[set[str], float]:
    """Run make vmlinux for at most BOX_S seconds; the objects it made and the time taken."""
    before = _objects_in(build_dir)
    cmd = make_command(arch, worktree, build_dir, "vmlinux", extra=WARN_FLAGS)
    start = time.monotonic()
    # The time box is proc.run's timeout: it kills make's whole process group.
    with suppress(ToolTimeout):
        run(cmd, timeout_s=box_s, log=build_dir / "bench-vmlinux.log", check=False)
    return _objects_in(build_dir) - before, time.monotonic() - start


def _rebuild_from_ccache(arch: Arch, worktree: Path, build_dir: Path, objects: set[str]
                         ) -> tuple[set[str], float]:
    """Delete OBJECTS and make them again (every compile a ccache hit): the warm rate."""
    for obj in objects:
        (build_dir / obj).unlink(missing_ok=True)
    start = time.monotonic()
    run_make(make_command(arch, worktree, build_dir, *sorted(objects),
                          extra=(*WARN_FLAGS, "-k")), build_dir / "bench-rebuild.log")
    took = time.monotonic() - start
    return {o for o in objects if (build_dir / o).exists()}, took


def bench_build(ctx: Context) -> dict[str, Any]:
    """make bench: the build stage cold, warm and for a new revision, against the naive bot
    (one full defconfig vmlinux per arch, time-boxed and extrapolated) and the floor (one
    config + prepare + the objects once per arch, from the cold run's own steps)."""
    box_s = float(os.environ.get("KSERIES_BENCH_BOX_S", BENCH_BOX_S))
    tree = ctx.tree()
    options = BuildOptions(tuple(get_arch(a) for a in ctx.config.arches))
    for arch in options.arches:
        check_toolchain(arch)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=ctx.cache) as scratch_name:
        scratch = Path(scratch_name)
        bench_ctx = replace(ctx, cache=scratch / "cache",
                            options=replace(ctx.options, out=scratch / "out"))
        applied = apply_series(tree, ctx.mbox_path(), bench_ctx.cache, ctx.config.name,
                               ctx.revision_name)
        try:
            # the arches one after the other, cold (own build dirs and ccache): what the
            # side-by-side default saves
            with _ccache_dir(scratch / "ccache-serial"):
                serial_s, _ = _timed_build(replace(bench_ctx, cache=scratch / "cache-serial"),
                                           tree, applied, replace(options, arch_workers=1))
            with _ccache_dir(scratch / "ccache"):
                cold_s, cold = _timed_build(bench_ctx, tree, applied, options)
                warm_s, _ = _timed_build(bench_ctx, tree, applied, options)
                v3 = revised_series(applied.worktree, applied, scratch / "v3.mbx")
                applied3 = apply_series(tree, v3, bench_ctx.cache,
                                        ctx.config.name, "bench-v3")
                revision_s, _ = _timed_build(bench_ctx, tree, applied3, options)
            with _ccache_dir(scratch / "ccache-naive"):
                naive = [naive_arch(arch, applied.worktree, scratch / f"naive-{arch.name}",
                                    box_s) for arch in options.arches]
        finally:
            remove_worktree(tree, applied.worktree)
            g.git(tree.path, "branch", "-D", "-q", scratch_branch(ctx.config.name, "bench-v3"),
                  check=False)
    figures = bench_figures(cold, cold_s, warm_s, revision_s, naive, box_s)
    figures["targeted_cold_arches_in_turn_s"] = serial_s
    figures["ratio_arches_side_by_side_vs_in_turn_cold"] = round(cold_s / serial_s, 2) \
        if serial_s else None
    return figures


def bench_figures(cold: Stage, cold_s: float, warm_s: float, revision_s: float,
                  naive: Sequence[Mapping[str, Any]], box_s: float) -> dict[str, Any]:
    arches = cold.data.get("arches", {})
    config_s = sum(c.duration_s for c in cold.checks if c.name.endswith(" config"))
    base_s = sum(c.duration_s for c in cold.checks if c.name.endswith(" base"))
    floor_s = round(config_s + base_s, 1)
    naive_cold = sum(n["extrapolated_cold_s"] or 0.0 for n in naive)
    naive_warm = sum(n["extrapolated_warm_s"] or 0.0 for n in naive)
    return {
        "status": cold.status,
        "arches": ", ".join(arches),
        "targeted_cold_s": cold_s, "targeted_warm_s": warm_s,
        "targeted_new_revision_warm_s": revision_s,
        "floor_s (config + prepare + objects once, per arch, from the cold run)": floor_s,
        "ratio_targeted_cold_vs_floor": round(cold_s / floor_s, 2) if floor_s else None,
        "naive_cold_s (extrapolated)": round(naive_cold, 1),
        "naive_warm_s (extrapolated, all ccache hits)": round(naive_warm, 1),
        "ratio_naive_vs_targeted_cold": round(naive_cold / cold_s, 1) if cold_s else None,
        "ratio_naive_vs_floor (both build each arch's config once, the naive bot all of it)":
            round(naive_cold / floor_s, 1) if floor_s else None,
        "ratio_naive_vs_targeted_warm": round(naive_warm / warm_s, 1) if warm_s else None,
        "naive_box_s": box_s,
        "naive_per_arch": list(naive),
        "note": "naive = one full defconfig+fragments vmlinux per arch (head only, no base, "
                "no per-patch builds); built for a fixed time, then extrapolated from "
                "objects/s to the object count of `make -n vmlinux`",
    }
