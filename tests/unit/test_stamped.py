"""Stamped JSON caches (core/stamped.py): answers kept per stamp, the oldest dropped."""

from __future__ import annotations

from pathlib import Path

from kseries.core import stamped


def test_answers_of_alternating_stamps_are_both_kept(tmp_path: Path) -> None:
    cache = tmp_path / "answers.json"
    assert stamped.load(cache, "base") is None
    stamped.save(cache, "base", {"A": [True, ""]})
    stamped.save(cache, "head", {"A": [False, "no"]})
    assert stamped.load(cache, "base") == {"A": [True, ""]}
    assert stamped.load(cache, "head") == {"A": [False, "no"]}
    assert not list(tmp_path.glob("*.partial"))


def test_the_oldest_stamps_go_beyond_the_limit(tmp_path: Path) -> None:
    cache = tmp_path / "answers.json"
    for n in range(5):
        stamped.save(cache, f"s{n}", n, kept=3)
    stamped.save(cache, "s2", "again", kept=3)  # saved again: the newest now
    stamped.save(cache, "s5", 5, kept=3)
    assert [stamped.load(cache, f"s{n}") for n in range(6)] == [None, None, "again", None, 4, 5]


def test_a_file_of_another_shape_is_no_answer(tmp_path: Path) -> None:
    cache = tmp_path / "answers.json"
    for text in ("not json", '{"stamp": "x", "symbols": {}}', '{"by_stamp": []}'):
        cache.write_text(text)
        assert stamped.load(cache, "x") is None
    stamped.save(cache, "x", 1)
    assert stamped.load(cache, "x") == 1
