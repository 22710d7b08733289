"""Small bootable guest kernels for vmtest: allnoconfig + Kconfig.fragments/vm-<arch>.config.

One build dir per arch (<cache>/build/vm-<arch>, ccache) serves the base and the series:
the base is built first (or taken from the image cache), then the series head, so the build
dir ends at the head and the next series build is incremental. Built images are kept in
<cache>/vm/<arch>/images/ keyed by commit and config inputs, so an unchanged base is never
rebuilt. The scratch worktree is always left at the series head.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from kseries.core import events
from kseries.core.durations import timed_run
from kseries.core.errors import KseriesError
from kseries.core.git import head_commit
from kseries.core.proc import command_line, run
from kseries.kernel.arches import Arch, get_arch, make_command, toolchain_version
from kseries.kernel.kconfig import FRAGMENTS_DIR, KconfigProblem, validate_config
from kseries.kernel.qemu import Machine
from kseries.series.apply import checkout

KEPT_IMAGES = 16  # series, base, every commit of the series, the mutants
HELPER_SOURCE = "kexec-file-debug.c"
VMCORE_SOURCE = "vmcore-read.c"


@dataclass(frozen=True)
class KernelBuild:
    label: str
    commit: str
    image: Path
    config: Path
    cached: bool
    reproducer: str
    problems: tuple[KconfigProblem, ...] = ()


def vm_arch(arch: str) -> Arch:
    """The build arch with allnoconfig as the starting point instead of the defconfig."""
    return replace(get_arch(arch), defconfig="allnoconfig")


def fragment(arch: str) -> Path:
    path = FRAGMENTS_DIR / f"vm-{arch}.config"
    if not path.is_file():
        raise KseriesError(f"no VM kernel config for {arch}: {path} is missing")
    return path


def build_dir(cache: Path, arch: str) -> Path:
    return cache / "build" / f"vm-{arch}"


def images_dir(cache: Path, arch: str) -> Path:
    return cache / "vm" / arch / "images"


def config_key(arch: str) -> str:
    """What decides the image besides the commit: the fragment and the compiler."""
    a = vm_arch(arch)
    digest = hashlib.sha256(fragment(arch).read_bytes())
    digest.update(toolchain_version(a).encode())
    return digest.hexdigest()[:12]


def cached_kernel(cache: Path, m: Machine, label: str, commit: str) -> KernelBuild | None:
    """The image built earlier from COMMIT with today's fragment and compiler, if kept."""
    key = f"{commit[:12]}-{config_key(m.arch)}"
    images = images_dir(cache, m.arch)
    image, config = images / f"{Path(m.kernel_image).name}-{key}", images / f"config-{key}"
    if not (image.is_file() and config.is_file()):
        return None
    image.touch()
    events.emit("cache-hit", what=f"vmtest kernel {m.arch}", label=label, commit=commit,
                image=str(image))
    return KernelBuild(label, commit, image, config, True, "(cached image)")


def build_kernel(worktree: Path, cache: Path, m: Machine, label: str, commit: str,
                 log: Path, compile_env: Mapping[str, str] | None = None) -> KernelBuild:
    """Check out COMMIT in our scratch WORKTREE, configure and build (or take the cached
    image); make gets COMPILE_ENV (Context.compile_env: a shared ccache, distcc)."""
    found = cached_kernel(cache, m, label, commit)
    if found is not None:
        return found
    if head_commit(worktree) != commit:
        checkout(worktree, commit)
    arch = vm_arch(m.arch)
    out = build_dir(cache, m.arch)
    target = Path(m.kernel_image).name
    cmd = make_command(arch, worktree, out, target)
    reproducer = command_line(cmd)
    problems = tuple(validate_config(worktree, out, arch, [fragment(m.arch)]))
    if problems:
        return KernelBuild(label, commit, out / m.kernel_image, out / ".config", False,
                           reproducer, problems)
    log.unlink(missing_ok=True)
    proc = timed_run(cache, f"vmtest kernel {m.arch}", cmd, check=False, log=log,
                     env=compile_env)
    if proc.returncode != 0:
        errors = [line for line in proc.stdout.splitlines() if "error" in line.lower()]
        detail = (errors or proc.stdout.splitlines() or ["no output"])[-1].strip()
        raise KseriesError(f"{label} kernel ({commit[:12]}) does not build: {detail} "
                           f"(log: {log})")
    key = f"{commit[:12]}-{config_key(m.arch)}"
    images = images_dir(cache, m.arch)
    image, config = images / f"{target}-{key}", images / f"config-{key}"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / m.kernel_image, image)
    shutil.copyfile(out / ".config", config)
    prune(images)
    return KernelBuild(label, commit, image, config, False, reproducer)


def prune(images: Path, keep: int = KEPT_IMAGES) -> None:
    """Keep the KEEP most recently used images (and their configs)."""
    kernels = sorted((p for p in images.iterdir() if not p.name.startswith("config-")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kernels[keep:]:
        old.unlink(missing_ok=True)
        key = old.name.split("-", 1)[1] if "-" in old.name else old.name
        (images / f"config-{key}").unlink(missing_ok=True)


def build_pair(worktree: Path, cache: Path, m: Machine, base: str | None, head: str,
               logs: Path, compile_env: Mapping[str, str]) -> tuple[list[KernelBuild],
                                                                      str | None]:
    """The base kernel (if BASE) and the series kernel; the worktree ends at HEAD.

    A base that does not build is reported (second value), not fatal: the series still runs.
    """
    builds = []
    base_error = None
    try:
        if base is not None:
            try:
                builds.append(build_kernel(worktree, cache, m, "base", base,
                                           logs / "build-base.log", compile_env))
            except KseriesError as err:
                base_error = str(err)
        builds.append(build_kernel(worktree, cache, m, "series", head,
                                   logs / "build-series.log", compile_env))
    finally:
        if head_commit(worktree) != head:
            checkout(worktree, head)
    return builds, base_error


def helper_binary(cache: Path, source_dir: Path, arch: str,
                  source_name: str = HELPER_SOURCE) -> Path:
    """One of our static guest helpers (kexec-file-debug.c, vmcore-read.c), compiled for ARCH
    once per source version."""
    source = source_dir / source_name
    cc = vm_arch(arch).cc
    digest = hashlib.sha256(source.read_bytes() + cc.encode()).hexdigest()[:12]
    binary = cache / "vm" / arch / f"{Path(source_name).stem}-{digest}"
    if binary.is_file():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".partial")
    run([cc, "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o", str(partial),
         str(source)], what=f"{cc} -static {source_name} (needs the libc static library)")
    partial.replace(binary)
    return binary
