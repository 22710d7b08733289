"""Threads as maintainers get them, read as b4 reads them (real b4, offline; no kernel tree):
the series model is what b4 would apply, and bad threads are one clear error."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

import pytest
from liblore.utils import split_mbox_as_bytes

from kseries.core.errors import KseriesError
from kseries.series.b4am import Prepared, prepare
from kseries.series.thread import read_thread, to_mboxrd
from tests import thread_cases as cases

V2_SUBJECTS = ["mm/memory_hotplug: Prepare passing flags to add_memory() and friends",
               "mm/memory_hotplug: Introduce MHP_DRIVER_MANAGED",
               "virtio-mem: Add memory with MHP_DRIVER_MANAGED",
               "mm/memory_hotplug: Require MHP_DRIVER_MANAGED for add_memory_driver_managed()"]


def prepared(tmp_path: Path, data: str | bytes, revision: int | None = None) -> Prepared:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "thread.mbox"
    source.write_bytes(data.encode() if isinstance(data, str) else data)
    return prepare(source, tmp_path / "b4", tmp_path, revision)


def test_plain_v2_is_four_patches_with_its_cover(tmp_path: Path) -> None:
    result = prepared(tmp_path, cases.v2_text())
    assert [p.subject for p in result.series.patches] == V2_SUBJECTS
    assert [p.index for p in result.series.patches] == [1, 2, 3, 4]
    assert result.series.cover_subject is not None and "0/4" in result.series.cover_subject
    assert result.series.base_commit is not None
    assert result.revision == 2 and not result.trailers and not result.ignored
    assert "--offline-mode" in result.command and "-n" not in result.command


def test_from_lines_survive_in_the_model_and_in_b4s_mbx(tmp_path: Path) -> None:
    result = prepared(tmp_path, cases.with_from_lines())
    assert len(result.series.patches) == 4
    # b4 escapes "From " as ">From " and leaves ">From " alone (mboxo) ...
    stored = result.mbx.read_text()
    assert "\n>From the spec: virtio-mem" in stored and "\n>From an earlier" in stored
    # ... and is applied as mboxrd (b4 shazam: git am --patch-format=mboxrd), so the prose line
    # comes back whole while the quoted one loses its '>': what b4 applies, and said.
    body = result.series.patches[0].body
    assert "\nFrom the spec: virtio-mem" in f"\n{body}" and "\nFrom an earlier" in body
    assert result.lossy == ((1, ">From an earlier review, quoted."),)
    assert any("is applied as 'From an earlier review, quoted.'" in n for n in result.notes)


def test_b4_reading_the_file_itself_would_cut_the_patch(tmp_path: Path) -> None:
    """Why the thread goes to b4 on stdin: the file path route loses the message."""
    source = tmp_path / "from-lines.mbox"
    source.write_text(cases.with_from_lines())
    assert len(mailbox.mbox(str(source))) == 6  # five messages, one cut in two


def test_mboxrd_stream_escapes_and_b4s_splitter_restores(tmp_path: Path) -> None:
    source = tmp_path / "t.mbox"
    source.write_text(cases.with_from_lines())
    thread = read_thread(source)
    raws = split_mbox_as_bytes(to_mboxrd(thread))
    # (b4's splitter ends the last message with one more newline: git am ignores it.)
    assert [raw.split(b"\n\n", 1)[1].rstrip(b"\n") for raw in raws] == \
        [m.raw.split(b"\n\n", 1)[1].rstrip(b"\n") for m in thread.mails]


@pytest.mark.parametrize("encoding", ["quoted-printable", "base64"])
def test_encoded_bodies_give_the_same_patch(tmp_path: Path, encoding: str) -> None:
    plain = prepared(tmp_path / "plain", cases.v2_text())
    coded = prepared(tmp_path / "coded", cases.encoded(encoding))
    assert coded.series.patches[1].body == plain.series.patches[1].body
    assert coded.series.patches[1].paths == plain.series.patches[1].paths


def test_crlf_thread_gives_the_same_patches(tmp_path: Path) -> None:
    plain = prepared(tmp_path / "plain", cases.v2_text())
    crlf = prepared(tmp_path / "crlf", cases.crlf())
    assert [p.subject for p in crlf.series.patches] == V2_SUBJECTS
    assert [p.paths for p in crlf.series.patches] == [p.paths for p in plain.series.patches]


def test_review_trailers_are_collected_with_their_source(tmp_path: Path) -> None:
    result = prepared(tmp_path, cases.with_review())
    reviewed = [t.index for t in result.trailers if t.trailer == f"Reviewed-by: {cases.REVIEWER}"]
    acked = [t.index for t in result.trailers if t.trailer == f"Acked-by: {cases.ACKER}"]
    assert reviewed == [1, 2, 3, 4] and acked == [2]
    assert all("reply" in t.source for t in result.trailers)
    assert f"Acked-by: {cases.ACKER}" in result.series.patches[1].body
    assert f"Acked-by: {cases.ACKER}" not in result.series.patches[0].body
    assert {i.message_id for i in result.ignored} == {"reply1@example.org", "reply2@example.org"}


def test_reply_with_a_diff_is_not_a_patch(tmp_path: Path) -> None:
    result = prepared(tmp_path, cases.with_fixup_reply())
    assert [p.subject for p in result.series.patches] == V2_SUBJECTS
    [ignored] = result.ignored
    assert ignored.has_diff and "not a patch of the series" in ignored.reason
    assert "Re: [PATCH v2 3/4]" in ignored.subject


def test_newest_revision_unless_asked(tmp_path: Path) -> None:
    newest = prepared(tmp_path / "new", cases.two_revisions())
    assert newest.revision == 2 and len(newest.series.patches) == 4
    assert all("v1, not the applied v2" in i.reason for i in newest.ignored)
    assert len(newest.ignored) == 5
    older = prepared(tmp_path / "old", cases.two_revisions(), revision=1)
    assert older.revision == 1
    assert "This is v1." in older.series.patches[0].body
    assert [p.index for p in older.series.patches] == [1, 2, 3, 4]


@pytest.mark.parametrize(("data", "revision", "needles"), [
    (cases.partial(3), None, ("v2 is incomplete", "patch 3/4 missing")),
    (cases.duplicate(2), None, ("two messages numbered 2/4", "remove the wrong one")),
    (cases.v2_text(), 5, ("has no v5", "it holds v2")),
    ("From x Mon Sep 17 00:00:00 2001\nSubject: hello\n\njust talk\n", None, ("no patch",)),
])
def test_bad_threads_are_one_clear_error(tmp_path: Path, data: str, revision: int | None,
                                         needles: tuple[str, ...]) -> None:
    with pytest.raises(KseriesError) as error:
        prepared(tmp_path, data, revision)
    assert "\n" not in str(error.value)
    for needle in needles:
        assert needle in str(error.value)


def test_maildir_and_folder_give_the_same_series(tmp_path: Path) -> None:
    text = cases.with_review()
    plain = prepared(tmp_path / "plain", text)
    for source in (cases.as_maildir(text, tmp_path / "Maildir"),
                   cases.as_folder(text, tmp_path / "folder")):
        result = prepare(source, tmp_path / f"b4-{source.name}", tmp_path)
        assert [p.body for p in result.series.patches] == [p.body for p in plain.series.patches]
        assert result.trailers == plain.trailers


def test_unthreaded_mail_is_threaded_under_the_first(tmp_path: Path) -> None:
    lines = io.StringIO(cases.v2_text()).readlines()
    unthreaded = "".join(line for line in lines if not line.lower().startswith(
        ("message-id:", "in-reply-to:", "references:")))
    result = prepared(tmp_path, unthreaded)
    assert [p.subject for p in result.series.patches] == V2_SUBJECTS
    assert any("without Message-Id" in note for note in result.notes)


def test_recipients_come_from_the_mail_as_sent(tmp_path: Path) -> None:
    parts = cases.messages(cases.without_recipients(cases.v2_text()))
    parts[2] = parts[2].replace("\nSubject:", "\nTo: Mm List <linux-mm@kvack.org>\n"
                                "Cc: A <a@example.org>, B <b@example.org>\nSubject:", 1)
    result = prepared(tmp_path, "".join(parts))
    assert result.series.patches[1].to == ("Mm List <linux-mm@kvack.org>",)
    assert result.series.patches[1].cc == ("A <a@example.org>", "B <b@example.org>")
    assert result.series.patches[0].to == ()
