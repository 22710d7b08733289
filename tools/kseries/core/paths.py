"""Where the project's own data lives: the checkout that holds tools/kseries/.

kseries is installed editable (`pip install -e .`), so the package sits inside the
repository and patches/, Kconfig.fragments/ and kernel-overlay/ are found beside it.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PATCHES_DIR = REPO_ROOT / "patches"
FRAGMENTS_DIR = REPO_ROOT / "Kconfig.fragments"
OVERLAY_DIR = REPO_ROOT / "kernel-overlay"
