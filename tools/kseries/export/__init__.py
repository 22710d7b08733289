"""Exporters: report.json in the formats the ecosystem reads (KCIDB, JUnit, patchwork, NIPA, HTML).

Every format is a module kseries.export.<name> with one function

    write(report: Mapping[str, Any], out: Path, settings: ExportSettings) -> list[Path]

that reads the report as report.json holds it (kseries.core.report.Report.to_json()), writes
under OUT and returns what it wrote. Modules are imported by name so that one format's
dependencies never load for another.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

FORMATS: tuple[str, ...] = ("kcidb", "junit", "patchwork", "nipa", "html")


@dataclass(frozen=True, kw_only=True)
class ExportSettings:
    """What a format needs besides the report: where logs live relative to, who we are."""

    report_dir: Path  # the directory report.json was read from: log paths are relative to it
    origin: str = "kseries"  # KCIDB origin (KCIDB ids are "<origin>:<id>")
    target_url: str | None = None  # patchwork checks: where a reader finds the results


class Writer(Protocol):
    def __call__(self, report: Mapping[str, Any], out: Path,
                 settings: ExportSettings) -> list[Path]: ...


def writer(name: str) -> Writer:
    """The write() of format NAME (one of FORMATS)."""
    if name not in FORMATS:
        raise ValueError(f"unknown format {name!r}: choose one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"kseries.export.{name}")
    write: Writer = module.write
    return write
