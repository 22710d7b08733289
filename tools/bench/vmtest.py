"""make bench, vmtest section: boot-to-result time of one full guest run on the base kernel."""

from __future__ import annotations

from typing import Any

from kseries.core.context import Context
from kseries.core.errors import KseriesError
from kseries.core.report import stopwatch
from kseries.kernel.qemu import machine
from kseries.kernel.tree import Tree
from kseries.series.apply import ensure_worktree, worktree_path
from kseries.stages.vmtest.guest import VmOptions, pack_initramfs, run_kernel
from kseries.stages.vmtest.kernel import build_kernel, cached_kernel


def bench_vmtest(ctx: Context) -> dict[str, Any]:
    """Boot-to-result time of one full guest run (TCG) on the tree's base kernel (built once,
    then taken from the image cache; the scratch worktree is only touched to build it)."""
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
    result = run_kernel(build, initrd, m, VmOptions(accel="tcg", base=False), "tcg",
                        logs / "guest")
    status, summary = result.health()
    if status != "pass" or result.guest is None or result.ktap is None:
        raise KseriesError(f"bench guest run failed: {summary} (logs: {logs / 'guest'})")
    return {"vmtest_boot_to_result_s": result.guest.duration_s, "accel": "tcg",
            "guest_results": len(result.ktap.results),
            "guest_failures": sum(1 for r in result.ktap.results if r.status == "fail"),
            "kernel_cached": build.cached, "kernel_build_s": build_took[0]}
