"""Versions of the tools a run used, for the report (a result is only as good as its tools)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from kseries.core.proc import ToolTimeout, run

# Python packages kseries drives; their versions change what b4, kconfiglib... do.
PYTHON_PACKAGES = ("b4", "GitPython", "kconfiglib", "unidiff")
VERSION_TIMEOUT_S = 20
# Programs that do not take --version: busybox says "applet not found" and makedumpfile
# "Commandline parameter is invalid" (Debian 12's 1.35.0 and 1.7.2); these print it first.
VERSION_ARGS = {"busybox": ("--help",), "makedumpfile": ("-v",)}


def program_version(program: str) -> str:
    """First line of `PROGRAM --version` (or VERSION_ARGS), or why there is none."""
    beside_python = Path(sys.executable).parent / program  # b4 lives in the venv
    path = str(beside_python) if beside_python.is_file() else shutil.which(program)
    if path is None:
        return "not installed"
    try:
        proc = run([path, *VERSION_ARGS.get(program, ("--version",))],
                   timeout_s=VERSION_TIMEOUT_S, check=False)
    except ToolTimeout:
        return f"no answer to --version within {VERSION_TIMEOUT_S} s"
    lines = [line.strip() for line in (proc.stdout or proc.stderr).splitlines() if line.strip()]
    return lines[0] if lines else "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(programs: Iterable[str]) -> dict[str, str]:
    """PROGRAM -> version line for each program, plus the Python packages kseries uses."""
    found = {name: program_version(name) for name in programs}
    found |= {f"python:{name}": package_version(name) for name in PYTHON_PACKAGES}
    return found
