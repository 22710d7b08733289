"""Finding the family in a tree: candidate files (git grep), tokenized once, and prototypes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.kernel.ccalls import find_calls_in
from kseries.kernel.ctokens import TYPE_KEYWORDS, CallSite, analyse, join_tokens, tokenize
from kseries.stages.callers.model import Finding, Param, Prototype, SourceFile
from kseries.stages.callers.spec import CallerCheckSpec


def family_pattern(names: Iterable[str]) -> str:
    return "|".join(names)


def candidate_files(tree: Path, names: Sequence[str]) -> list[str]:
    """Files of TREE's working tree that contain one of NAMES as a word (git grep -l -w).

    Documentation/ is prose, and tools/ is user space: both have no kernel callers.
    """
    proc = g.run_git(tree, "grep", "-l", "-w", "-E", family_pattern(names),
                     "--", "*.c", "*.h", ":(exclude)Documentation/", ":(exclude)tools/",
                     check=False)
    if proc.returncode not in (0, 1):
        raise KseriesError(f"cannot search {tree} with git grep (is it a git checkout?): "
                           f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
    return [line for line in proc.stdout.splitlines() if line]


def read_source(tree: Path, path: str, names: Sequence[str]) -> SourceFile:
    try:
        text = (tree / path).read_text(errors="replace")
    except OSError as err:
        raise KseriesError(f"cannot read {tree / path}: {err.strerror}") from None
    tokens = tokenize(text)
    structure = analyse(tokens)
    return SourceFile(path, tuple(tokens), structure,
                      tuple(find_calls_in(tokens, names, path, structure)))


def scan_tree(tree: Path, spec: CallerCheckSpec) -> dict[str, SourceFile]:
    """Candidate files (plus the invariants' files), each read and tokenized once."""
    if not tree.is_dir():
        raise KseriesError(f"tree {tree} does not exist; pass a Linux source checkout")
    paths = candidate_files(tree, spec.family)
    extra = [p for p in (*spec.required_flag_files, spec.no_name_strcmp_file)
             if p and p not in paths and (tree / p).is_file()]
    return {p: read_source(tree, p, spec.family) for p in (*paths, *extra)}


def parse_param(text: str) -> Param | None:
    """`const char *resource_name` -> Param('const char *', 'resource_name'); `void` -> None."""
    tokens = tokenize(text)
    if not tokens or [t.text for t in tokens] == ["void"]:
        return None
    for index in range(len(tokens) - 3):  # int (*cb)(int): the name is inside (*...)
        window = [t.text for t in tokens[index:index + 2]]
        if window == ["(", "*"] and tokens[index + 2].kind == "ident":
            return Param(text, tokens[index + 2].text)
    last = tokens[-1]
    idents = [t for t in tokens if t.kind == "ident"]
    if last.kind == "ident" and len(idents) >= 2 and last.text not in TYPE_KEYWORDS:
        return Param(join_tokens(tokens[:-1], declaration=True), last.text)
    return Param(join_tokens(tokens, declaration=True), "")


def prototype_of(site: CallSite) -> Prototype:
    params = tuple(p for p in (parse_param(a) for a in site.args) if p is not None)
    return Prototype(site.name, site.file, site.line, params)


def find_prototypes(sources: Sequence[SourceFile], family: Sequence[str]
                    ) -> tuple[dict[str, Prototype], list[Finding]]:
    """Each family function's prototype: a header declaration first, else a definition."""
    prototypes: dict[str, Prototype] = {}
    findings: list[Finding] = []

    def rank(site: CallSite) -> tuple[int, str, int]:
        header = site.file.endswith(".h")
        return (0 if header and site.kind == "declaration" else 1 if not header else 2,
                site.file, site.line)

    for name in family:
        sites = sorted((s for src in sources for s in src.sites
                        if s.name == name and s.kind in ("declaration", "definition")
                        and not s.text.startswith("#define")), key=rank)
        if not sites:
            findings.append(Finding("", 0, "", name, "error",
                                    f"no prototype or definition of {name}() found", "prototype"))
            continue
        chosen = prototypes[name] = prototype_of(sites[0])
        for other in sites[1:]:
            if len(prototype_of(other).params) != len(chosen.params):
                findings.append(Finding(
                    other.file, other.line, other.function, other.text, "warning",
                    f"{other.kind} of {name}() takes {len(prototype_of(other).params)} "
                    f"parameters, the prototype at {chosen.file}:{chosen.line} "
                    f"{len(chosen.params)}", "prototype"))
    return prototypes, findings
