"""What the caller check checks: the API family, its flags type, and the series' invariants."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kseries.core.errors import KseriesError
from kseries.series.config import Api

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CallerCheckSpec:
    """What to check: the family, its flags type and prefix, and the series' invariants."""

    family: tuple[str, ...]
    flags_type: str = "mhp_t"
    flags_prefix: str = "MHP_"
    # (a) calls in these files must pass required_flag, directly or via a variable/macro.
    required_flag_files: tuple[str, ...] = ()
    required_flag: str = ""
    # (b) this file must not decide driver-managed state with strcmp() on a resource name.
    no_name_strcmp_file: str = ""

    def validate(self) -> None:
        names = (*self.family, self.flags_type, *([self.required_flag] * bool(self.required_flag)))
        bad = [n for n in names if not _IDENT_RE.match(n)]
        if bad or not self.family:
            raise KseriesError(f"caller check: {bad or 'an empty family'} is not a list of C "
                               "identifiers; fix [api] in series.toml")
        if self.required_flag_files and not self.required_flag:
            raise KseriesError("caller check: required_flag_files given without required_flag; "
                               "set 'flag' in the caller-passes-flag invariant")


def spec_from_api(api: Api) -> CallerCheckSpec:
    """The check described by series.toml's [api] table."""
    files: list[str] = []
    flags: set[str] = set()
    strcmp_files: list[str] = []
    for invariant in api.invariants:
        if invariant.kind == "caller-passes-flag":
            if not invariant.flag:
                raise KseriesError("series.toml: a caller-passes-flag invariant needs 'flag'; "
                                   "add flag = \"MHP_...\"")
            files.extend(invariant.files)
            flags.add(invariant.flag)
        elif invariant.kind == "no-name-strcmp":
            strcmp_files.extend(invariant.files)
        else:
            raise KseriesError(f"series.toml: unknown invariant kind '{invariant.kind}'; use "
                               "caller-passes-flag or no-name-strcmp")
    if len(flags) > 1 or len(strcmp_files) > 1:
        raise KseriesError("series.toml: the caller checker supports one caller-passes-flag flag "
                           "and one no-name-strcmp file; merge the invariants")
    spec = CallerCheckSpec(api.family, api.flags_type, api.flags_prefix, tuple(files),
                           next(iter(flags), ""), strcmp_files[0] if strcmp_files else "")
    spec.validate()
    return spec
