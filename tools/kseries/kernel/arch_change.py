"""Commits whose kernel for an arch is their parent's: a runtime bisect (vmtest, KUnit)
need not build and boot them again on that arch."""

from __future__ import annotations

from pathlib import Path

from kseries.core.git import git
from kseries.kernel.arches import ARCHES


def not_built_for(worktree: Path, commit: str, arch: str) -> str | None:
    """Why the kernel for ARCH at COMMIT is its parent's, or None if it may differ: every
    file the commit changes is under another arch's arch/ directory or Documentation/,
    which kbuild never reads for ARCH=<this arch's kernel_arch>."""
    changed = git(worktree, "diff-tree", "--no-commit-id", "--name-only", "-r", commit).split()
    own = f"arch/{ARCHES[arch].kernel_arch}/"
    elsewhere = [p for p in changed if p.startswith("Documentation/")
                 or (p.startswith("arch/") and not p.startswith(own))]
    if not changed or elsewhere != changed:
        return None
    dirs = sorted({"Documentation/" if p.startswith("Documentation/")
                   else "/".join(p.split("/")[:2]) + "/" for p in changed})
    return (f"changes only {', '.join(dirs)}: nothing of it is built for {arch}, so its "
            f"kernel is the commit before it, byte for byte; not built or run again")
