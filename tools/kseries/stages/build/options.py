"""What a build run does (BuildOptions) and the make flags every step of it uses.

Below every other module of the build stage, so that each of them can take the options
without importing the stage's entry points.
"""

from __future__ import annotations

from dataclasses import dataclass

from kseries.kernel.arches import Arch

WARN_FLAGS = ("W=1",)
MAKE_FLAGS = ("-k", "-Otarget")
SPARSE_FLAGS = ("C=2",)
SPARSE_ARCH = "x86_64"


@dataclass(frozen=True)
class BuildOptions:
    arches: tuple[Arch, ...]
    base: bool = True
    bisect: bool = True
    sparse: bool = True
    # arches built at once at each commit (execute.each_arch); 0: one per CPU
    arch_workers: int = 0
