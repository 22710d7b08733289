"""patches/series.toml: what the series is, its revisions, base and API family."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kseries.core.errors import KseriesError
from kseries.core.paths import PATCHES_DIR
from kseries.kernel.arches import ARCHES

KNOWN_ARCHES = tuple(ARCHES)
REVISION_RE = re.compile(r"^v[1-9][0-9]*$")


@dataclass(frozen=True)
class Base:
    """The default tree: a Debian source package pinned to one version."""

    package: str
    version: str
    upstream: str


@dataclass(frozen=True)
class Revision:
    name: str
    mbox: Path


@dataclass(frozen=True)
class Invariant:
    """A rule the caller checker enforces (see callers.py)."""

    kind: str
    files: tuple[str, ...]
    flag: str | None


@dataclass(frozen=True)
class Api:
    family: tuple[str, ...]
    flags_type: str
    flags_prefix: str
    invariants: tuple[Invariant, ...]


@dataclass(frozen=True)
class SeriesConfig:
    path: Path
    name: str
    title: str
    current: str
    revisions: tuple[Revision, ...]
    base: Base
    arches: tuple[str, ...]
    api: Api
    change_id: str | None = None

    @property
    def patches_dir(self) -> Path:
        return self.path.parent

    def revision(self, name: str | None = None) -> Revision:
        wanted = name or self.current
        for revision in self.revisions:
            if revision.name == wanted:
                return revision
        known = ", ".join(r.name for r in self.revisions)
        raise KseriesError(f"unknown revision '{wanted}' (series.toml knows: {known})")

    def previous(self, name: str) -> Revision | None:
        """The revision before NAME in series order, if any."""
        names = [r.name for r in self.revisions]
        index = names.index(name)
        return self.revisions[index - 1] if index > 0 else None


def default_series_file() -> Path:
    """patches/series.toml of the checkout this package lives in."""
    return PATCHES_DIR / "series.toml"


def load_series(path: Path | None = None) -> SeriesConfig:
    path = path or default_series_file()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise KseriesError(f"series file {path} not found; pass --series FILE") from None
    except tomllib.TOMLDecodeError as err:
        raise KseriesError(f"{path} is not valid TOML: {err}") from None
    return parse_series(data, path)


def parse_series(data: dict[str, Any], path: Path) -> SeriesConfig:
    where = str(path)
    series = _table(data, "series", where)
    revisions = _parse_revisions(_table(data, "revisions", where), path.parent, where)
    current = _str(series, "current", f"{where} [series]")
    if current not in {r.name for r in revisions}:
        raise KseriesError(f"{where}: [series] current = '{current}' has no [revisions.{current}]")
    arches = tuple(_str_list(series, "arches", f"{where} [series]"))
    unknown = [a for a in arches if a not in KNOWN_ARCHES]
    if unknown or not arches:
        raise KseriesError(
            f"{where}: arches must be a non-empty subset of {', '.join(KNOWN_ARCHES)}; got {arches}"
        )
    return SeriesConfig(
        path=path,
        name=_str(series, "name", f"{where} [series]"),
        title=_str(series, "title", f"{where} [series]"),
        current=current,
        revisions=revisions,
        base=_parse_base(_table(data, "base", where), where),
        arches=arches,
        api=_parse_api(_table(data, "api", where), where),
        change_id=_optional_str(series, "change_id", f"{where} [series]"),
    )


def _parse_revisions(table: dict[str, Any], directory: Path, where: str) -> tuple[Revision, ...]:
    revisions = []
    for name, entry in table.items():
        if not REVISION_RE.match(name):
            raise KseriesError(f"{where}: revision names look like v2, v3; got '{name}'")
        if not isinstance(entry, dict):
            raise KseriesError(f"{where}: [revisions.{name}] must be a table with 'mbox'")
        mbox = _str(entry, "mbox", f"{where} [revisions.{name}]")
        revisions.append(Revision(name, directory / mbox))
    if not revisions:
        raise KseriesError(f"{where}: [revisions] is empty; add [revisions.v1] mbox = \"v1.mbx\"")
    return tuple(sorted(revisions, key=lambda r: int(r.name[1:])))


def _parse_base(table: dict[str, Any], where: str) -> Base:
    label = f"{where} [base]"
    return Base(_str(table, "package", label), _str(table, "version", label),
                _str(table, "upstream", label))


def _parse_api(table: dict[str, Any], where: str) -> Api:
    label = f"{where} [api]"
    invariants = []
    for index, entry in enumerate(table.get("invariant", [])):
        inv_label = f"{label} invariant #{index + 1}"
        if not isinstance(entry, dict):
            raise KseriesError(f"{inv_label} must be a table")
        flag = entry.get("flag")
        if flag is not None and not isinstance(flag, str):
            raise KseriesError(f"{inv_label}: 'flag' must be a string")
        invariants.append(Invariant(_str(entry, "kind", inv_label),
                                    tuple(_str_list(entry, "files", inv_label)), flag))
    family = tuple(_str_list(table, "family", label))
    if not family:
        raise KseriesError(f"{label}: 'family' must name at least one function")
    return Api(family, _str(table, "flags_type", label), _str(table, "flags_prefix", label),
               tuple(invariants))


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise KseriesError(f"{where}: missing table [{key}]")
    return value


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise KseriesError(f"{where}: '{key}' must be a non-empty string")
    return value


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    return _str(data, key, where) if key in data else None


def _str_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KseriesError(f"{where}: '{key}' must be a list of strings")
    return value
