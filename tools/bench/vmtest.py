"""make bench, vmtest section: boot-to-result time of every guest scenario (phases, two kexec
reboots, three dumps, the controls) on the base kernel, and their sum against the target."""

from __future__ import annotations

from typing import Any

from kseries.core.context import Context
from kseries.core.errors import KseriesError
from kseries.core.report import stopwatch
from kseries.kernel.qemu import machine
from kseries.kernel.tree import Tree
from kseries.series.apply import ensure_worktree, worktree_path
from kseries.stages.vmtest.guest import SCENARIOS, VmOptions, pack_initramfs, run_kernel
from kseries.stages.vmtest.kernel import build_kernel, cached_kernel

TARGET_S = 60.0


def bench_vmtest(ctx: Context) -> dict[str, Any]:
    """Boot-to-result time of each scenario (TCG) on the tree's base kernel (built once, then
    taken from the image cache; the scratch worktree is only touched to build it)."""
    tree: Tree = ctx.tree()
    m = machine("x86_64")
    logs = ctx.cache / "vm" / "bench"
    with stopwatch() as build_took:
        build = cached_kernel(ctx.cache, m, "base", tree.base_commit)
        if build is None:
            worktree = ensure_worktree(tree, worktree_path(ctx.cache, tree), tree.base_commit)
            build = build_kernel(worktree, ctx.cache, m, "base", tree.base_commit,
                                 logs / "build.log")
    if build.problems:
        raise KseriesError(f"vm kernel config: {build.problems[0]}")
    initrd = pack_initramfs(tree.path, ctx.cache, build, "x86_64")
    opts = VmOptions(accel="tcg", base=False)
    figures: dict[str, Any] = {"accel": "tcg", "kernel_cached": build.cached,
                               "kernel_build_s": build_took[0]}
    total = 0.0
    for scenario in SCENARIOS:
        result = run_kernel(build, initrd, m, opts, "tcg", logs / scenario.name, scenario)
        status, summary = result.health()
        if status != "pass" or result.guest is None or result.ktap is None:
            raise KseriesError(f"bench guest run {scenario.name} failed: {summary} "
                               f"(logs: {logs / scenario.name})")
        figures[f"{scenario.name}_s"] = result.guest.duration_s
        figures[f"{scenario.name}_results"] = len(result.ktap.results)
        total += result.guest.duration_s
    # issue 15: every scenario (both reboots, all three dumps) under 60 s warm under TCG
    figures["all_scenarios_s"] = round(total, 1)
    figures["all_scenarios_vs_60s_target"] = round(total / TARGET_S, 2)
    return figures
