"""patches/series.toml loading and validation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kseries.core.errors import KseriesError
from kseries.series.config import load_series, parse_series
from tests.conftest import ROOT, assert_one_line_error, run_cli

SERIES = ROOT / "patches" / "series.toml"


def load_raw() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(SERIES.read_text())


def test_project_series_file_is_valid() -> None:
    config = load_series(SERIES)
    assert config.current == "v3"
    assert config.base.package == "linux-source-6.12"
    assert config.base.version == "6.12.117-1~deb12u1"
    assert config.arches == ("x86_64", "arm64", "powerpc", "s390")
    assert set(config.api.family) == {"add_memory", "__add_memory", "add_memory_resource",
                                      "add_memory_driver_managed"}
    assert config.revision().mbox == ROOT / "patches" / "v3.mbx"
    assert config.revision("v2").mbox == ROOT / "patches" / "v2.mbx"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("base"), "missing table [base]"),
        (lambda d: d["base"].pop("version"), "'version' must be a non-empty string"),
        (lambda d: d["series"].update(current="v9"), "has no [revisions.v9]"),
        (lambda d: d["series"].update(arches=["x86_64", "mips"]), "arches must be"),
        (lambda d: d["api"].update(family="add_memory"), "'family' must be a list"),
        (lambda d: d["revisions"].update(two={"mbox": "x"}), "revision names look like v2"),
    ],
)
def test_invalid_series_is_a_clear_error(mutate, message) -> None:  # type: ignore[no-untyped-def]
    data = load_raw()
    mutate(data)
    with pytest.raises(KseriesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_series(data, SERIES)


def test_unknown_revision_lists_known_ones() -> None:
    with pytest.raises(KseriesError, match=r"unknown revision 'v7'.*v2"):
        load_series(SERIES).revision("v7")


def test_cli_reports_broken_series_file_in_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "series.toml"
    broken.write_text("[series\nname=")
    result = run_cli("tree", "--show", "--series", broken)
    assert_one_line_error(result, "not valid TOML")
