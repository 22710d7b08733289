"""One build run from start to finish: plan, configure every arch, build, report."""

from __future__ import annotations

from kseries.core.context import Context, progress
from kseries.core.report import Stage, stopwatch
from kseries.kernel.tree import Tree
from kseries.series.apply import ApplyResult, checkout, ensure_worktree
from kseries.stages.build.coverage import configure
from kseries.stages.build.execute import KBUILD_FILES_RE, ArchRun, BaseCache, base_key, execute
from kseries.stages.build.make import ResultCache, with_compile_env
from kseries.stages.build.metadata import ccache_counts
from kseries.stages.build.options import BuildOptions
from kseries.stages.build.plan import make_plan
from kseries.stages.build.summary import summarise


def run_build(ctx: Context, tree: Tree, applied: ApplyResult, options: BuildOptions) -> Stage:
    """Configure, plan, build (base, per patch, head, sparse) and report, as one Stage."""
    ccache_before = ccache_counts()
    with stopwatch() as took:
        worktree = applied.worktree
        ensure_worktree(tree, worktree, applied.head)
        plan = make_plan(worktree, applied, ctx.config.api.family, ctx.cache)
        progress(f"build: {len(plan.targets)} file(s) to compile on "
                 f"{', '.join(a.name for a in options.arches)}")
        setups = [with_compile_env(configure(ctx.cache, worktree, arch, ctx.out, plan.targets),
                                   ctx.compile_env) for arch in options.arches]
        cacheable = not any(KBUILD_FILES_RE.search(p) or p.startswith("scripts/")
                            for files in plan.patch_files for p in files)
        runs = [ArchRun(s, BaseCache.load(s.build_dir, base_key(s, worktree, applied.base)),
                        ResultCache(s.build_dir, cacheable)) for s in setups]
        try:
            execute(worktree, applied, plan, runs, options)
        finally:
            checkout(worktree, applied.head)
            for arch_run in runs:
                arch_run.cache.save()
                arch_run.results.save()
    return summarise(ctx, applied, plan, runs, options, took[0], ccache_before)
