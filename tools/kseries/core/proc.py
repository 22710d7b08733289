"""Running external programs: argument lists only, errors as one line."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from kseries.core.errors import KseriesError

# Debian package that provides each external program we call.
PACKAGE_OF: Mapping[str, str] = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "tar": "tar",
    "xz": "xz-utils",
    "git": "git",
    "b4": "b4 (pip install b4)",
    "make": "make",
    "ccache": "ccache",
    "sparse": "sparse",
    "spatch": "coccinelle",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "powerpc64le-linux-gnu-gcc": "gcc-powerpc64le-linux-gnu",
    "s390x-linux-gnu-gcc": "gcc-s390x-linux-gnu",
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-ppc64": "qemu-system-ppc",
    "qemu-system-s390x": "qemu-system-s390x",
    "kexec": "kexec-tools",
    "busybox": "busybox-static",
}


def require_program(name: str) -> str:
    """Return the full path of NAME or fail naming the package that provides it."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if found is None:
        package = PACKAGE_OF.get(name, name)
        raise KseriesError(f"'{name}' is not installed; install it ({package}) or run 'make setup'")
    return found


def command_line(cmd: Sequence[str | Path], cwd: Path | None = None) -> str:
    """A shell-pasteable form of CMD, for logs and reproducers."""
    text = shlex.join(str(part) for part in cmd)
    return f"cd {shlex.quote(str(cwd))} && {text}" if cwd else text


def run(
    cmd: Sequence[str | Path],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
    what: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run CMD capturing text output; with CHECK, a failure is a one-line KseriesError."""
    args = [str(part) for part in cmd]
    args[0] = require_program(args[0])
    full_env = {**os.environ, **env} if env else None
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=full_env,
        input=input_text,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if check and proc.returncode != 0:
        label = what or command_line(args)
        detail = last_line(proc.stderr or proc.stdout)
        raise KseriesError(f"{label} failed (exit {proc.returncode}): {detail}")
    return proc


def last_line(text: str) -> str:
    """The last non-empty line of TEXT, or a placeholder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
