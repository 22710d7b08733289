"""`kseries report --format FORMAT ... [REPORT]`, and `kseries verify --format FORMAT`.

`report` is a plain command, not a stage: it reads a report.json (default out/report.json)
and writes the formats asked for under --out (default: the report's directory / export).
It needs no tree, no series file and no lock. Bad input (no such report, not JSON, not a
kseries report, an unknown format, a KCIDB origin KCIDB refuses) is one `kseries: error:`
line naming the problem and what to do, exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kseries.core.errors import KseriesError
from kseries.core.report import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, REPORT_NAME
from kseries.export import FORMATS, ExportSettings, writer
from kseries.export.kcidb import ORIGIN_RE

EXPORT_DIR = "export"


def add_format_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """--format (repeatable), --origin, --target-url; checked by check_formats()."""
    parser.add_argument("--format", action="append", dest="formats", metavar="FORMAT",
                        required=required,
                        help=f"write the report as FORMAT (repeatable): {', '.join(FORMATS)}")
    parser.add_argument("--origin", default="kseries", metavar="NAME",
                        help="KCIDB origin, the CI system's name ([a-z0-9_]+; default: kseries)")
    parser.add_argument("--target-url", metavar="URL",
                        help="where readers find the exported directory (patchwork checks' "
                             "target_url, KCIDB log URLs); default: none / local file: URLs")


def configure_report(parser: argparse.ArgumentParser) -> None:
    add_format_options(parser, required=True)
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"where to write (default: the report's directory/{EXPORT_DIR})")
    parser.add_argument("report", nargs="?", type=Path, default=Path("out") / REPORT_NAME,
                        metavar="REPORT", help="a report.json, or the directory holding it "
                        f"(default: out/{REPORT_NAME})")


def add_report_command(subparsers: Any, epilog: str) -> None:
    """Register `report` on the kseries command line (subparsers of argparse)."""
    text = "write a report.json as KCIDB, JUnit, patchwork checks, NIPA results or HTML"
    child = subparsers.add_parser("report", help=text, description=text, epilog=epilog)
    configure_report(child)
    child.set_defaults(plain=report_main, handler=None, locked=False)


def check_formats(formats: Sequence[str] | None, origin: str) -> tuple[str, ...]:
    """FORMATS in order, each once; a KseriesError naming the first unknown one."""
    chosen = tuple(dict.fromkeys(formats or ()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise KseriesError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)} "
                           "(--format is repeatable)")
    if "kcidb" in chosen and not ORIGIN_RE.match(origin):
        raise KseriesError(f"--origin {origin!r}: a KCIDB origin is lower-case letters, "
                           "digits and _ only (e.g. --origin my_lab)")
    return chosen


def read_report(path: Path) -> Mapping[str, Any]:
    """The report at PATH (a report.json, or a directory with one)."""
    if path.is_dir():
        path = path / REPORT_NAME
    if not path.is_file():
        raise KseriesError(f"report {path} does not exist; run 'kseries verify' first or "
                           "pass the path of a report.json")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise KseriesError(f"{path} is not text; pass a report.json that kseries wrote") \
            from None
    except json.JSONDecodeError as err:
        raise KseriesError(f"{path} is not JSON ({err.msg} at line {err.lineno}); pass a "
                           "report.json that kseries wrote") from None
    except OSError as err:
        raise KseriesError(f"cannot read {path}: {err.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise KseriesError(f"{path} is JSON but not a kseries report (no 'stages' list); "
                           "pass a report.json that kseries wrote")
    return data


def export(report: Mapping[str, Any], formats: Sequence[str], out: Path,
           settings: ExportSettings) -> list[Path]:
    written: list[Path] = []
    for name in formats:
        written += writer(name)(report, out, settings)
    return written


def run_export(report_path: Path, out: Path | None, args: argparse.Namespace) -> int:
    """Read REPORT_PATH, write args.formats under OUT; print what was written."""
    try:
        formats = check_formats(args.formats, args.origin)
        report = read_report(report_path)
        where = report_path if report_path.is_dir() else report_path.parent
        target = out if out is not None else where / EXPORT_DIR
        settings = ExportSettings(report_dir=where.resolve(), origin=args.origin,
                                  target_url=args.target_url)
        written = export(report, formats, target, settings)
    except KseriesError as err:
        print(f"kseries: error: {err}", file=sys.stderr)
        return EXIT_FAIL
    except OSError as err:
        print(f"kseries: error: cannot write {err.filename or out}: {err.strerror}; pass "
              "--out DIR with a writable directory", file=sys.stderr)
        return EXIT_ERROR
    for path in written:
        print(f"wrote: {path}")
    return EXIT_PASS


def report_main(args: argparse.Namespace) -> int:
    return run_export(args.report, args.out, args)


def export_after_run(out: Path, args: argparse.Namespace) -> int:
    """`verify --format ...`: the run's report written as those formats in OUT/export."""
    if not args.formats:
        return EXIT_PASS
    return run_export(out / REPORT_NAME, None, args)
