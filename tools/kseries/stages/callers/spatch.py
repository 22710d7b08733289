"""The second opinion: Coccinelle (spatch) finds the same calls, or we say where it differs."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from kseries.core.proc import command_line, run
from kseries.stages.callers.model import CallerReport, Finding, SecondOpinion
from kseries.stages.callers.spec import CallerCheckSpec

# Kernel macros Coccinelle 1.1 cannot parse on its own (`scoped_guard(...) { }` makes it
# give up on the whole function).
SPATCH_MACROS = (
    "#define scoped_guard(_name, args...) for (;;)\n"
    "#define scoped_cond_guard(_name, _fail, args...) for (;;)\n"
)


def semantic_patch(family: Sequence[str]) -> str:
    """SmPL that prints file, line and name of every call of FAMILY."""
    names = "|".join(family)
    return (
        "@r@\n"
        f'identifier f =~ "^({names})$";\n'
        "expression list es;\n"
        "position p;\n"
        "@@\n"
        "f@p(es)\n\n"
        "@script:python@\n"
        "f << r.f;\n"
        "p << r.p;\n"
        "@@\n"
        'print("KSERIES\\t%s\\t%s\\t%s" % (p[0].file, p[0].line, f))\n'
    )


def second_opinion(report: CallerReport, tree: Path, spec: CallerCheckSpec) -> SecondOpinion:
    """Run Coccinelle on the caller files and compare its calls with ours.

    Disagreements become warnings. Coccinelle parses real C, so it may differ on calls
    in macro bodies and in code it cannot parse; they are reported, not hidden.
    """
    if shutil.which("spatch") is None:
        return SecondOpinion("skipped", "skipped: spatch not installed")
    files = report.caller_files
    if not files:
        return SecondOpinion("agree", "no caller files to check")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kseries-cocci-") as scratch:
        sp_file = Path(scratch) / "family.cocci"
        sp_file.write_text(semantic_patch(spec.family))
        macro_file = Path(scratch) / "macros.h"
        macro_file.write_text(SPATCH_MACROS)
        cmd = ["spatch", "--sp-file", str(sp_file), "--macro-file", str(macro_file),
               "--very-quiet", "--no-includes", "--no-show-diff", *files]
        proc = run(cmd, cwd=tree, check=False)
    theirs = _parse_spatch(proc.stdout, tree)
    ours = {(c.file, c.line, c.name) for c in report.calls}
    findings = []
    for file, line, name in sorted(ours - theirs):
        call = next(c for c in report.calls if (c.file, c.line, c.name) == (file, line, name))
        why = " (inside a macro body)" if call.kind == "macro_call" else ""
        findings.append(Finding(file, line, call.function, call.text, "warning",
                                f"spatch did not find this call{why}", "second-opinion"))
    for file, line, name in sorted(theirs - ours):
        findings.append(Finding(file, line, "", name, "warning",
                                f"spatch found a call of {name}() the tokenizer did not",
                                "second-opinion"))
    if proc.returncode != 0 and not theirs:
        detail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        findings.append(Finding("", 0, "", "", "warning", f"spatch failed (exit "
                                f"{proc.returncode}): {detail[0]}", "second-opinion"))
    status: Literal["agree", "disagree"] = "disagree" if findings else "agree"
    return SecondOpinion(status, f"spatch found {len(theirs)} calls, the tokenizer "
                         f"{len(ours)}; {len(findings)} disagreements", tuple(findings),
                         command_line(cmd, tree), round(time.monotonic() - started, 3))


def _parse_spatch(output: str, tree: Path) -> set[tuple[str, int, str]]:
    found = set()
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "KSERIES" and parts[2].isdigit():
            path = Path(parts[1])
            relative = str(path.relative_to(tree)) if path.is_absolute() else parts[1]
            found.add((relative, int(parts[2]), parts[3]))
    return found
