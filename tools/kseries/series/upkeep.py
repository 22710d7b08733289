"""The export / import / diff subcommands (revisions.py does the work)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kseries.core import git as g
from kseries.core.context import Context, progress
from kseries.core.errors import KseriesError
from kseries.kernel.tree import Tree
from kseries.series.apply import ApplyResult, apply_series
from kseries.series.config import Revision
from kseries.series.mbox import read_series
from kseries.series.prep import (
    PrepInfo,
    change_id_of_revision,
    choose_base_branch,
    cover_of_revision,
    enroll,
)
from kseries.series.recipients import add_recipients
from kseries.series.revisions import (
    RevisionDiff,
    add_trailer_after_base,
    change_id,
    diff_revisions,
    export_mbox,
    record_revision,
    revision_number,
)
from kseries.series.trailers import TrailerResult, collect_trailers


def configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--branch", required=True, help="the branch holding the new revision")
    parser.add_argument("--as", dest="as_revision", required=True, metavar="vN",
                        help="revision name to write (patches/vN.mbx)")
    parser.add_argument("--base", metavar="REV",
                        help="base commit (default: the default tree's import, or the current "
                             "revision's base-commit)")
    parser.add_argument("--cover", type=Path, metavar="FILE",
                        help="cover letter text (default: patches/vN-cover.txt, else the branch "
                             "description)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing vN.mbx")
    parser.add_argument("--no-recipients", action="store_true",
                        help="write no To/Cc (by default each patch gets them from the tree's "
                             "scripts/get_maintainer.pl, the cover letter their union)")


def configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="vN", help="revision to import for editing")
    parser.add_argument("--branch", help="branch to create (default: <series>/<vN>-wip)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing edit worktree and branch")
    parser.add_argument("--no-enroll", action="store_true",
                        help="do not enroll the branch with b4 prep (it needs a branch of "
                             "your tree that holds the base without the series)")


def configure_trailers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--branch", required=True,
                        help="the enrolled edit branch (kseries import made it)")
    parser.add_argument("--from", dest="source", required=True, type=Path,
                        metavar="FILE|DIR",
                        help="the thread with the replies: an mbox, a Maildir or a folder of "
                             ".eml files (the revision's own patches need not be in it)")
    parser.add_argument("--any-name", action="store_true",
                        help="take trailers whose name the kernel does not use (by default "
                             "one such trailer, a typo like 'Reviewd-by:', changes nothing)")


def configure_diff(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="vA", help="older revision (or an .mbx file)")
    parser.add_argument("new", metavar="vB", help="newer revision (or an .mbx file)")
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print the comparison as JSON on stdout (per patch: kind, old "
                             "and new number, subject, interdiff)")


def export_main(ctx: Context, args: argparse.Namespace) -> int:
    revision = args.as_revision
    revision_number(revision)
    tree = ctx.tree()
    base = resolve_base(ctx, tree, args.base)
    target = ctx.config.patches_dir / f"{revision}.mbx"
    if target.exists() and not args.force:
        raise KseriesError(f"{target} exists; pass --force to overwrite it or pick another vN")
    cover = cover_text(ctx, tree, args.branch, revision, args.cover)
    cid = change_id(ctx.config)
    domain = author_domain(tree.path, args.branch)
    mbox = export_mbox(tree.path, base, args.branch, revision, cover, cid, domain)
    if not args.no_recipients:
        mbox = with_recipients(tree, args.branch, mbox)
    target.write_text(add_trailer_after_base(mbox, f"change-id: {cid}"))
    record_revision(ctx.config.path, revision, target.name)
    count = len(read_series(target).patches)
    print(f"wrote {target} ({count} patches on {base[:12]}); series.toml current = {revision}")
    return 0


def with_recipients(tree: Tree, branch: str, mbox: str) -> str:
    """MBOX with To/Cc from get_maintainer, run where BRANCH is checked out (its MAINTAINERS,
    as `git send-email --cc-cmd` would run there), else in the tree itself."""
    where = g.worktree_of(tree.path, branch) or tree.path
    progress(f"get_maintainer per patch in {where}")
    mbox, note = add_recipients(mbox, where)
    if note:
        print(f"note: {note}")
    return mbox


def resolve_base(ctx: Context, tree: Tree, wanted: str | None) -> str:
    if wanted:
        commit = g.resolve_commit(tree.path, wanted)
        if commit is None:
            raise KseriesError(f"--base {wanted} is not a commit in {tree.path}")
        return commit
    if tree.default:
        return tree.base_commit
    current = read_series(ctx.config.revision().mbox).base_commit
    commit = g.resolve_commit(tree.path, current) if current else None
    if commit is None:
        raise KseriesError("cannot tell the base of the branch in your tree; pass --base REV")
    return commit


def cover_text(ctx: Context, tree: Tree, branch: str, revision: str, given: Path | None) -> str:
    path = given or ctx.config.patches_dir / f"{revision}-cover.txt"
    if path.is_file():
        return path.read_text()
    if given is not None:
        raise KseriesError(f"cover letter file {given} does not exist")
    description = g.config_value(tree.path, f"branch.{branch}.description")
    if description.strip():
        return description
    raise KseriesError(f"no cover letter text: write {path} (subject line, blank line, body) or "
                       f"set it with 'git branch --edit-description {branch}'")


def author_domain(repo: Path, branch: str) -> str:
    return g.author(repo, branch)[1].rpartition("@")[2] or "localhost"


def import_main(ctx: Context, args: argparse.Namespace) -> int:
    revision = ctx.config.revision(args.name)
    tree = ctx.tree()
    result = apply_revision(ctx, tree, revision.name, revision.mbox)
    branch = args.branch or f"{ctx.config.name}/{revision.name}-wip"
    edit = ctx.cache / "edit" / f"{tree.path.name}-{ctx.config.name}-{revision.name}"
    if edit.exists() and not args.force:
        raise KseriesError(f"{edit} exists (it may hold your edits); pass --force to replace it")
    if g.resolve_commit(tree.path, branch) is not None and not args.force:
        raise KseriesError(f"branch '{branch}' exists in {tree.path}; pass --force or --branch")
    # Before anything is made: a tree b4 cannot enroll in is an error with nothing left over.
    base_branch = None if args.no_enroll else choose_base_branch(
        tree.path, result.base, result.head, branch)
    if (edit / ".git").is_file():
        g.force_checkout(edit, result.head, branch)
    else:
        g.add_worktree(tree.path, edit, result.head, branch)
    print(f"imported {revision.name}: {len(result.patches)} patches on {result.base[:12]}")
    print(f"branch:   {branch}")
    print(f"worktree: {edit}")
    if base_branch is not None:
        info = enroll_revision(ctx, revision, edit, branch, base_branch)
        print(f"b4 prep:  enrolled (change-id {info.change_id}, v{info.revision}, base branch "
              f"{base_branch}; the cover letter is the branch description)")
    print(f"next:     edit and commit there, then: kseries export --branch {branch} "
          f"--as v{revision_number(revision.name) + 1}")
    return 0


def enroll_revision(ctx: Context, revision: Revision, edit: Path, branch: str,
                    base_branch: str) -> PrepInfo:
    """Enroll BRANCH with b4 prep as REVISION: its cover letter and change-id."""
    progress(f"b4 prep --enroll {base_branch} in {edit}")
    cover = cover_of_revision(revision.mbox, ctx.config.patches_dir / f"{revision.name}-cover.txt")
    cid = change_id_of_revision(revision.mbox, change_id(ctx.config))
    return enroll(edit, branch, base_branch, cover, cid, revision_number(revision.name))


def trailers_main(ctx: Context, args: argparse.Namespace) -> int:
    tree = ctx.tree()
    workdir = ctx.cache / "trailers" / args.branch.replace("/", "-")
    progress(f"b4 trailers -u on {args.branch} from {args.source}")
    result = collect_trailers(tree.path, args.branch, args.source, ctx.config.revisions,
                              workdir, args.any_name)
    print_trailers(result)
    return 0


def print_trailers(result: TrailerResult) -> None:
    count = len(result.added)
    print(f"{result.branch}: {count} trailer{'s' if count != 1 else ''} added by b4 trailers -u")
    for added in result.added:
        print(f"  {added.describe()}")
    print(f"worktree: {result.worktree}")
    print(f"head:     {result.old_head[:12]} -> {result.new_head[:12]} (b4 keeps the old one "
          f"as refs/original/{result.branch})")
    print(f"b4 log:   {result.log}")


def apply_revision(ctx: Context, tree: Tree, name: str, mbox: Path) -> ApplyResult:
    progress(f"applying {name} ({mbox.name})")
    return apply_series(tree, mbox, ctx.cache, ctx.config.name, name)


def revision_source(ctx: Context, spec: str) -> tuple[str, Path]:
    """A revision name from series.toml, or a path to an .mbx file."""
    as_path = Path(spec)
    if spec.endswith(".mbx") or as_path.is_file():
        if not as_path.is_file():
            raise KseriesError(f"mbox {spec} does not exist")
        return as_path.stem, as_path
    revision = ctx.config.revision(spec)
    return revision.name, revision.mbox


def compare(ctx: Context, tree: Tree, old_spec: str, new_spec: str) -> RevisionDiff:
    old_name, old_mbox = revision_source(ctx, old_spec)
    new_name, new_mbox = revision_source(ctx, new_spec)
    old = apply_revision(ctx, tree, old_name, old_mbox)
    new = apply_revision(ctx, tree, new_name, new_mbox)
    return diff_revisions(tree, old_name, (old.base, old.head), new_name, (new.base, new.head))


def diff_main(ctx: Context, args: argparse.Namespace) -> int:
    result = compare(ctx, ctx.tree(), args.old, args.new)
    print(json.dumps(result.to_json(), indent=2) if args.as_json else result.format_text())
    return 0
