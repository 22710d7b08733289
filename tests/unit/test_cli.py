"""The CLI edge: --version, -q/-v, stage selection, doctor, and the package's shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_cli

SHARED_CYCLES = ROOT.parent / "shared" / "tools" / "import-cycles.py"
MAX_MODULE_LINES = 600


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("kseries ")


def test_unknown_stage_is_a_usage_error() -> None:
    result = run_cli("verify", "--stage", "lint")
    assert result.returncode == 2 and "invalid choice: 'lint'" in result.stderr


def test_stage_commands_take_only_the_options_they_use() -> None:
    assert run_cli("tree", "--mbox", "x.mbx").returncode == 2
    assert run_cli("export", "--out", "x").returncode == 2
    assert run_cli("build", "--help").returncode == 0


def test_quiet_hides_progress_and_verbose_does_not(tmp_path: Path) -> None:
    loud = run_cli("tree", "--show", "--cache-dir", tmp_path)
    quiet = run_cli("-q", "tree", "--show", "--cache-dir", tmp_path)
    assert loud.returncode == quiet.returncode == 1  # no tree imported in an empty cache
    assert quiet.stderr.count("\n") == 1 and quiet.stderr.startswith("kseries: error:")


def test_doctor_names_the_package_of_a_missing_tool(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("git", "make", "ccache", "gcc", "ld"):
        found = subprocess.run(["which", name], capture_output=True, text=True, check=False)
        if found.returncode == 0:
            (bin_dir / name).symlink_to(found.stdout.strip())
    env = {**os.environ, "PATH": str(bin_dir)}
    kseries = Path(sys.executable).parent / "kseries"
    proc = subprocess.run([str(kseries), "doctor", "--stage", "build", "--arch", "s390",
                           "--cache-dir", str(tmp_path / "cache")], capture_output=True,
                          text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    missing = [line for line in proc.stdout.splitlines() if line.startswith("MISS")]
    assert any("s390x-linux-gnu-gcc" in line and "gcc-s390x-linux-gnu" in line
               for line in missing), proc.stdout
    assert any("s390x-linux-gnu-ld" in line and "binutils-s390x-linux-gnu" in line
               for line in missing), proc.stdout


def test_no_import_cycle_and_no_huge_module() -> None:
    """Function-level imports count too (the shared checker parses every import)."""
    proc = subprocess.run([sys.executable, str(SHARED_CYCLES), str(ROOT / "tools" / "kseries"),
                           str(MAX_MODULE_LINES)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
