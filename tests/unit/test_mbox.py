"""Reading series mailboxes, and refusing bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.series.mbox import read_series
from tests.conftest import FIXTURES


def test_fixture_series_is_parsed() -> None:
    series = read_series(FIXTURES / "small-series.mbx")
    assert series.cover_subject is not None and "0/2" in series.cover_subject
    assert [p.index for p in series.patches] == [1, 2]
    assert series.patches[0].subject == "drivers/base/memory: Document probe_store() locking"
    assert series.base_commit == "8b02695b2f70b85fb5d4c0e561d1cee328851436"
    assert series.touched_paths == ("drivers/base/memory.c", "mm/memory_hotplug.c")
    assert series.patches[1].diff.startswith("diff --git a/mm/memory_hotplug.c")


def test_missing_mbox(tmp_path: Path) -> None:
    with pytest.raises(KseriesError, match="does not exist"):
        read_series(tmp_path / "nope.mbx")


def test_empty_mbox(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mbx"
    empty.write_text("")
    with pytest.raises(KseriesError, match="is empty"):
        read_series(empty)


def test_garbage_mbox(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mbx"
    garbage.write_bytes(b"\x00\x01 this is not a mailbox\n(((\n")
    with pytest.raises(KseriesError, match="no mail messages"):
        read_series(garbage)


def test_mbox_without_patches(tmp_path: Path) -> None:
    text = "From x Mon Sep 17 00:00:00 2001\nSubject: hello\n\njust talk\n"
    mail = tmp_path / "talk.mbx"
    mail.write_text(text)
    with pytest.raises(KseriesError, match="no patch"):
        read_series(mail)


@pytest.mark.parametrize("bad", ["../etc/passwd", "mm/../../x.c", "/abs/path.c", ".git/config"])
def test_unsafe_paths_are_refused(tmp_path: Path, bad: str) -> None:
    text = (FIXTURES / "small-series.mbx").read_text()
    evil = tmp_path / "evil.mbx"
    evil.write_text(text.replace("a/drivers/base/memory.c b/drivers/base/memory.c",
                                 f"a/{bad} b/{bad}", 1))
    with pytest.raises(KseriesError, match="unsafe path"):
        read_series(evil)


def test_body_line_starting_with_from_stays_in_its_patch(tmp_path: Path) -> None:
    mbox = tmp_path / "series.mbx"
    mbox.write_text(
        "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
        "From: A <a@example.org>\nSubject: [PATCH 1/1] mm: one\n\n"
        "From the spec: hot-added memory may be device memory.\n\n"
        "Signed-off-by: A <a@example.org>\n---\n"
        "diff --git a/mm/x.c b/mm/x.c\n--- a/mm/x.c\n+++ b/mm/x.c\n@@ -1 +1 @@\n-a\n+b\n")
    series = read_series(mbox)
    [patch] = series.patches
    assert patch.subject == "mm: one"
    assert patch.paths == ("mm/x.c",)
    assert "From the spec:" in patch.body
