"""Revision upkeep on the real tree with the real series (patches/v2.mbx)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kseries.kernel.tree import Tree
from tests.conftest import ROOT, git, release_edit_worktree, run_cli

pytestmark = pytest.mark.realtree
BRANCH = "kseries-test/v2-wip"
FIREWORD = "Create a new firmware memmap entry, unless the memory is driver"


def kseries(patches: Path, *args: str) -> str:
    result = run_cli(*args, "--series", patches / "series.toml")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def field(output: str, name: str) -> str:
    return output.split(f"{name}:")[1].split()[0]


def test_export_import_round_trip_and_v3(real_tree: Tree, patches: Path) -> None:
    first = kseries(patches, "import", "v2", "--branch", BRANCH, "--force")
    edit = Path(field(first, "worktree"))
    head = git(edit, "rev-parse", "HEAD")
    again = kseries(patches, "import", "v2", "--branch", BRANCH, "--force")
    assert git(Path(field(again, "worktree")), "rev-parse", "HEAD") == head

    # Exporting the imported branch reproduces the mbox byte for byte.
    kseries(patches, "export", "--branch", BRANCH, "--as", "v2", "--force")
    assert (patches / "v2.mbx").read_bytes() == (ROOT / "patches" / "v2.mbx").read_bytes()

    # The same for the current revision, v3.
    current = kseries(patches, "import", "v3", "--branch", BRANCH + "-v3", "--force")
    kseries(patches, "export", "--branch", BRANCH + "-v3", "--as", "v3", "--force")
    assert (patches / "v3.mbx").read_bytes() == (ROOT / "patches" / "v3.mbx").read_bytes()
    release_edit_worktree(real_tree.path, Path(field(current, "worktree")), BRANCH + "-v3")

    # v4 made from v2: change one hunk of patch 2 (keep 3 and 4 as they are), append a patch 5.
    commits = git(edit, "rev-list", "--reverse", f"{real_tree.base_commit}..HEAD").split()
    git(edit, "reset", "-q", "--hard", commits[1])
    hotplug = edit / "mm" / "memory_hotplug.c"
    text = hotplug.read_text()
    assert FIREWORD in text
    hotplug.write_text(text.replace(FIREWORD, FIREWORD.replace("Create", "Add")))
    git(edit, "commit", "-q", "-a", "--amend", "--no-edit")
    git(edit, "cherry-pick", commits[2], commits[3])
    virtio = edit / "drivers" / "virtio" / "virtio_mem.c"
    virtio.write_text(virtio.read_text().replace("#include <linux/virtio.h>\n",
                                                 "#include <linux/virtio.h>\n\n", 1))
    git(edit, "commit", "-q", "-a", "-s", "-m", "virtio-mem: Spacing", "-m", "For the test.")
    shutil.copy(patches / "v2-cover.txt", patches / "v4-cover.txt")
    kseries(patches, "export", "--branch", BRANCH, "--as", "v4")
    assert 'current = "v4"' in (patches / "series.toml").read_text()
    v4 = (patches / "v4.mbx").read_text()
    assert "[PATCH v4 5/5] virtio-mem: Spacing" in v4

    report = kseries(patches, "diff", "v2", "v4")
    assert "v2 -> v4: 1 changed, 1 new, 0 dropped, 3 unchanged" in report
    kinds = [line.split()[:2] for line in report.splitlines() if line.startswith("  ") and
             line.split()[0] in {"changed", "new", "unchanged", "dropped"}]
    assert kinds == [["unchanged", "1"], ["changed", "2"], ["unchanged", "3"],
                     ["unchanged", "4"], ["new", "-"]]
    assert "-+\t * Create a new firmware memmap entry" in report
    assert "++\t * Add a new firmware memmap entry" in report
    release_edit_worktree(real_tree.path, edit, BRANCH)
