"""The default tree on the real Debian linux-source-6.12 package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kseries.kernel.tree import Tree, cache_dir, kernel_version, provide_default_tree
from kseries.series.config import load_series
from tests.conftest import assert_one_line_error, git, run_cli

pytestmark = pytest.mark.realtree


def test_default_tree_is_the_pinned_version(real_tree: Tree) -> None:
    assert real_tree.version == "6.12.117"
    assert kernel_version(real_tree.path) == "6.12.117"
    assert git(real_tree.path, "status", "--porcelain", "--untracked-files=no") == ""
    # Debian's "ignore every top-level path" stanza is gone, so git sees the tree normally.
    assert "Debian packaging" not in (real_tree.path / ".gitignore").read_text()
    assert git(real_tree.path, "ls-files", "mm/memory_hotplug.c") == "mm/memory_hotplug.c"


def test_import_is_reproducible_in_a_fresh_cache(real_tree: Tree, tmp_path: Path) -> None:
    """Same tarball, fresh cache dir, same commit id: base-commit trailers mean something."""
    config = load_series()
    # the .deb the shared cache downloaded (apt checked its hash then): what is tested is
    # the unpacking and the import, not the mirror's speed
    debs = tmp_path / "cache" / "debs"
    debs.mkdir(parents=True)
    for deb in (cache_dir() / "debs").glob(f"{config.base.package}_*.deb"):
        shutil.copyfile(deb, debs / deb.name)
    fresh = provide_default_tree(tmp_path / "cache", config.base, progress=lambda _m: None)
    assert fresh.path != real_tree.path
    assert fresh.base_commit == real_tree.base_commit
    again = provide_default_tree(tmp_path / "cache", config.base, progress=lambda _m: None)
    assert again == fresh


def test_tree_show_prints_path_version_commit(real_tree: Tree) -> None:
    result = run_cli("tree", "--show")
    assert result.returncode == 0, result.stderr
    assert f"path:        {real_tree.path}" in result.stdout
    assert "version:     6.12.117" in result.stdout
    assert f"base commit: {real_tree.base_commit}" in result.stdout


def test_unavailable_version_lists_available_ones(tmp_path: Path) -> None:
    result = run_cli("tree", "--base-version", "6.12.1-99~nope", "--cache-dir", tmp_path)
    assert_one_line_error(result, "version 6.12.1-99~nope is not available", "6.12.117-1~deb12u1")


def test_show_before_import_says_what_to_run(tmp_path: Path) -> None:
    result = run_cli("tree", "--show", "--cache-dir", tmp_path)
    assert_one_line_error(result, "not imported yet", "kseries tree")
