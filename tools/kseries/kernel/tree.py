"""Kernel trees: the user's own git checkout, or the pinned Debian source imported into git.

The import is reproducible: the same tarball gives the same commit id on every
machine (fixed identity, dates taken from the package, fixed message), so a
`base-commit:` trailer naming it means something.
"""

from __future__ import annotations

import email.utils
import gzip
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import run
from kseries.series.config import Base

IMPORT_BRANCH = "base"
IMPORT_TAG = "kseries-import"
IMPORT_IDENTITY = ("kseries import", "kseries@localhost")
DEBIAN_GITIGNORE_MARK = "\n#\n# Debian packaging: ignore everything at the top level"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Tree:
    """A Linux source tree in a git repository."""

    path: Path
    version: str
    base_commit: str
    default: bool


def cache_dir(override: Path | None = None) -> Path:
    """--cache-dir, else $KSERIES_CACHE_DIR, else $XDG_CACHE_HOME/kseries, else ~/.cache/kseries."""
    if override is not None:
        return override.resolve()
    if os.environ.get("KSERIES_CACHE_DIR"):
        return Path(os.environ["KSERIES_CACHE_DIR"]).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(xdg) / "kseries").resolve()


def default_tree_path(cache: Path, base: Base) -> Path:
    return cache / "trees" / f"{base.package}_{base.version.replace('~', '_')}"


def kernel_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL(EXTRAVERSION) from the top-level Makefile."""
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except FileNotFoundError:
        raise KseriesError(f"{tree} has no top-level Makefile: not a Linux source tree") from None
    pattern = r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=[ \t]*(\S*)"
    fields: dict[str, str] = dict(re.findall(pattern, text, re.MULTILINE))
    if "VERSION" not in fields or "PATCHLEVEL" not in fields:
        raise KseriesError(f"{tree}/Makefile has no VERSION/PATCHLEVEL: not a Linux source tree")
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    if fields.get("SUBLEVEL"):
        version += f".{fields['SUBLEVEL']}"
    return version + fields.get("EXTRAVERSION", "")


def open_user_tree(path: Path) -> Tree:
    """A user's own checkout: must be a git work tree of Linux with a commit."""
    if not path.is_dir():
        raise KseriesError(f"--tree {path} is not a directory; pass a git checkout of Linux")
    if not g.is_git_repo(path):
        raise KseriesError(f"--tree {path} is not a git repository; pass a git checkout of Linux "
                           "(or omit --tree to use the default tree)")
    top = g.toplevel(path)
    version = kernel_version(top)
    return Tree(top, version, g.head_commit(top), default=False)


def open_default_tree(cache: Path, base: Base) -> Tree | None:
    """The imported default tree if it exists, else None."""
    path = default_tree_path(cache, base)
    commit = g.resolve_commit(path, IMPORT_TAG) if (path / ".git").exists() else None
    if commit is None:
        return None
    no_auto_gc(path)
    return Tree(path, kernel_version(path), commit, default=True)


def no_auto_gc(repo: Path) -> None:
    """Our imported tree holds ~90k loose objects: any git run there without kseries'
    hermetic settings (a user's own git, a test's) would start `git gc --auto`, which repacks
    the whole tree in the background for minutes. The tree is ours (the cache), so say it in
    its own config, once."""
    if g.config_value(repo, "gc.auto") != "0":
        g.set_config(repo, "gc.auto", "0")


def provide_default_tree(cache: Path, base: Base, progress: Progress = print) -> Tree:
    """Fetch, unpack and import the pinned Debian source; a second call is a no-op."""
    existing = open_default_tree(cache, base)
    if existing is not None:
        return existing
    deb = download_package(cache / "debs", base, progress)
    destination = default_tree_path(cache, base)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="import-", dir=destination.parent) as scratch:
        source = unpack_source(deb, Path(scratch), progress)
        date = package_date(Path(scratch) / "pkg", base.package)
        progress(f"tree: importing {base.package} {base.version} into git (about a minute)")
        import_into_git(source, base, date)
        if destination.exists():
            shutil.rmtree(destination)
        source.rename(destination)
    tree = open_default_tree(cache, base)
    assert tree is not None
    progress(f"tree: {tree.path} at {tree.base_commit}")
    return tree


def download_package(directory: Path, base: Base, progress: Progress) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wanted = f"{base.package}_{base.version.replace(':', '%3a')}_all.deb"
    deb = directory / wanted
    if deb.exists():
        return deb
    progress(f"tree: downloading {base.package}={base.version}")
    proc = run(["apt-get", "download", f"{base.package}={base.version}"], cwd=directory,
               check=False)
    if proc.returncode != 0 or not deb.exists():
        available = available_versions(base.package)
        listing = ", ".join(available) if available else "none (run 'apt-get update' first)"
        raise KseriesError(f"{base.package} version {base.version} is not available from apt; "
                           f"available: {listing}")
    return deb


def available_versions(package: str) -> list[str]:
    proc = run(["apt-cache", "madison", package], check=False)
    return [parts[1].strip() for line in proc.stdout.splitlines()
            if len(parts := line.split("|")) >= 2]


def unpack_source(deb: Path, scratch: Path, progress: Progress) -> Path:
    """dpkg-deb -x the package, untar its source tarball; return the source directory."""
    progress(f"tree: unpacking {deb.name}")
    package_root = scratch / "pkg"
    run(["dpkg-deb", "-x", str(deb), str(package_root)], what=f"dpkg-deb -x {deb.name}")
    tarballs = sorted((package_root / "usr" / "src").glob("linux-source-*.tar.*"))
    if len(tarballs) != 1:
        raise KseriesError(f"{deb.name} holds {len(tarballs)} source tarballs, expected one")
    run(["tar", "-xf", str(tarballs[0]), "-C", str(scratch)], what=f"tar -xf {tarballs[0].name}")
    sources = [p for p in scratch.iterdir() if p.is_dir() and p.name.startswith("linux-source")]
    if len(sources) != 1:
        raise KseriesError(f"{tarballs[0].name} did not unpack to one linux-source directory")
    return sources[0]


def package_date(package_root: Path, package: str) -> str:
    """The date of the newest Debian changelog entry, as a fixed commit date."""
    changelog = package_root / "usr" / "share" / "doc" / package / "changelog.Debian.gz"
    with gzip.open(changelog, "rt", errors="replace") as stream:
        for line in stream:
            if line.startswith(" -- ") and "  " in line[4:]:
                stamp = line.rsplit("  ", 1)[1].strip()
                parsed = email.utils.parsedate_to_datetime(stamp)
                return parsed.strftime("%Y-%m-%dT%H:%M:%S%z")
    raise KseriesError(f"{changelog} has no dated entry")


def strip_debian_gitignore(source: Path) -> None:
    """Drop Debian's stanza that ignores every top-level path (it hides the whole tree)."""
    gitignore = source / ".gitignore"
    text = gitignore.read_text()
    cut = text.find(DEBIAN_GITIGNORE_MARK)
    if cut >= 0:
        gitignore.write_text(text[:cut].rstrip("\n") + "\n")


def import_into_git(source: Path, base: Base, date: str) -> str:
    strip_debian_gitignore(source)
    name, mail = IMPORT_IDENTITY
    env = {
        "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": mail, "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": mail, "GIT_COMMITTER_DATE": date,
    }
    message = (f"Import {base.package} {base.version}\n\n"
               f"Linux {base.upstream} as shipped by Debian's {base.package} package, version\n"
               f"{base.version}, imported by kseries. The Debian packaging stanza at the end\n"
               "of the top-level .gitignore (it ignores every top-level path) is removed.\n")
    g.git(source, "init", "-q", "-b", IMPORT_BRANCH)
    g.git(source, "add", "-f", "-A")
    g.git(source, "commit", "-q", "--no-verify", "-F", "-", env=env, input_text=message)
    g.git(source, "tag", IMPORT_TAG)
    return g.head_commit(source)
