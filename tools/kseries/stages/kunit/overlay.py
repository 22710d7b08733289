"""Lay kernel-overlay/ (the KUnit suite and its Kconfig/Makefile hooks) onto a worktree.

The overlay is data (kernel-overlay/overlay.toml): files copied to the same path, and
snippets inserted before or after an anchor line of an existing file. Laying it only
adds untracked files and edits tracked ones, so apply.checkout() (`git checkout -f`,
`git clean -fd`) removes it again. Laying twice is a no-op.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.paths import OVERLAY_DIR

MANIFEST = "overlay.toml"


@dataclass(frozen=True)
class Hook:
    """SNIPPET goes right before or after the one line of FILE that equals ANCHOR."""

    file: str
    position: Literal["before", "after"]
    anchor: str
    snippet: str


@dataclass(frozen=True)
class Overlay:
    """The suite (FILES, HOOKS) and what is laid only onto the base without the series
    (BASE_FILES, BASE_HOOKS: a shim that lets the suite build there)."""

    root: Path
    files: tuple[str, ...]
    hooks: tuple[Hook, ...]
    base_files: tuple[str, ...] = ()
    base_hooks: tuple[Hook, ...] = ()

    def source(self, relative: str) -> Path:
        return self.root / relative


def default_overlay_dir() -> Path:
    """kernel-overlay/ of the checkout this package lives in."""
    return OVERLAY_DIR


def load_overlay(root: Path | None = None) -> Overlay:
    root = root or default_overlay_dir()
    manifest = root / MANIFEST
    try:
        data = tomllib.loads(manifest.read_text())
    except FileNotFoundError:
        raise KseriesError(f"{manifest} not found; the KUnit overlay is missing") from None
    except tomllib.TOMLDecodeError as err:
        raise KseriesError(f"{manifest} is not valid TOML: {err}") from None
    files = _parse_files(data.get("files", []), root, manifest, "files")
    if not files:
        raise KseriesError(f"{manifest}: 'files' must be a non-empty list of paths")
    hooks = tuple(_parse_hook(entry, root, f"{manifest} hook #{n}")
                  for n, entry in enumerate(data.get("hook", []), start=1))
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise KseriesError(f"{manifest}: 'base' must be a table")
    base_files = _parse_files(base.get("files", []), root, manifest, "base.files")
    base_hooks = tuple(_parse_hook(entry, root, f"{manifest} base.hook #{n}")
                       for n, entry in enumerate(base.get("hook", []), start=1))
    return Overlay(root, files, hooks, base_files, base_hooks)


def _parse_files(files: Any, root: Path, manifest: Path, key: str) -> tuple[str, ...]:
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise KseriesError(f"{manifest}: '{key}' must be a list of paths")
    for relative in files:
        _check_relative(relative, manifest)
        if not (root / relative).is_file():
            raise KseriesError(f"{manifest}: file {relative} is not in {root}")
    return tuple(files)


def _parse_hook(entry: Any, root: Path, where: str) -> Hook:
    if not isinstance(entry, dict):
        raise KseriesError(f"{where} must be a table")
    positions = [key for key in ("before", "after") if key in entry]
    if len(positions) != 1:
        raise KseriesError(f"{where} needs exactly one of 'before' or 'after'")
    position: Literal["before", "after"] = "before" if positions[0] == "before" else "after"
    values = {key: entry.get(key) for key in ("file", position, "snippet")}
    for key, value in values.items():
        if not isinstance(value, str) or not value:
            raise KseriesError(f"{where}: '{key}' must be a non-empty string")
    file, anchor, snippet_path = str(values["file"]), str(values[position]), str(values["snippet"])
    _check_relative(file, Path(where))
    try:
        snippet = (root / snippet_path).read_text()
    except FileNotFoundError:
        raise KseriesError(f"{where}: snippet {snippet_path} is not in {root}") from None
    if not snippet.endswith("\n"):
        snippet += "\n"
    return Hook(file, position, anchor, snippet)


def _check_relative(relative: str, where: Path) -> None:
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or not parts:
        raise KseriesError(f"{where}: '{relative}' must be a relative path inside the tree")


def lay_overlay(overlay: Overlay, worktree: Path, on_base: bool = False) -> list[str]:
    """Copy the files and insert the hooks into WORKTREE (ON_BASE: also the base shim);
    return the paths touched."""
    files = overlay.files + (overlay.base_files if on_base else ())
    hooks = overlay.hooks + (overlay.base_hooks if on_base else ())
    return lay_parts(overlay, worktree, files, hooks)


def lay_parts(overlay: Overlay, worktree: Path, files: tuple[str, ...],
              hooks: tuple[Hook, ...]) -> list[str]:
    """Copy FILES of the overlay and insert HOOKS into WORKTREE; return the paths touched."""
    touched = []
    for relative in files:
        target = worktree / relative
        content = overlay.source(relative).read_bytes()
        if target.exists() and target.read_bytes() != content:
            raise KseriesError(f"{relative} already exists in {worktree} with other content; "
                               "the overlay would overwrite a kernel file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(content)
            # The source's mtime, not now: laid again for the next run, the suite is not
            # newer than its object, so a warm build neither recompiles nor relinks.
            source = overlay.source(relative).stat()
            os.utime(target, ns=(source.st_atime_ns, source.st_mtime_ns))
        touched.append(relative)
    for hook in hooks:
        target = worktree / hook.file
        try:
            text = target.read_text()
        except FileNotFoundError:
            raise KseriesError(f"overlay hook: {hook.file} is not in {worktree}") from None
        updated = apply_hook(text, hook)
        if updated != text:
            target.write_text(updated)
        touched.append(hook.file)
    return touched


def apply_hook(text: str, hook: Hook) -> str:
    """TEXT with the hook's snippet inserted (unchanged when it is there already)."""
    lines = text.splitlines(keepends=True)
    where = [i for i, line in enumerate(lines) if line.rstrip("\n") == hook.anchor]
    snippet = hook.snippet.splitlines(keepends=True)
    if len(where) != 1:
        raise KseriesError(f"overlay hook: {hook.file} has {len(where)} lines '{hook.anchor}', "
                           "expected exactly one; update kernel-overlay/overlay.toml")
    at = where[0] if hook.position == "before" else where[0] + 1
    start = at - len(snippet) if hook.position == "before" else at
    if lines[start:start + len(snippet)] == snippet:
        return text
    return "".join(lines[:at] + snippet + lines[at:])


# --- the same change as a patch for upstream posting (patches/extra/) ---------------------

EXTRA_AUTHOR = ("Seed 1d42b095 maintainers",
                "maintainers@users.noreply.r-seed-1d42b095.example")
EXTRA_DATE = "2026-11-26T12:00:00+00:00"


def format_patch(overlay: Overlay, repo: Path, commit: str, message: str) -> str:
    """The overlay laid onto COMMIT of REPO, as `git format-patch` text with MESSAGE.

    Works in a throw-away shared clone with its own index, so REPO and its
    worktrees are only read.
    """
    name, mail = EXTRA_AUTHOR
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": mail, "GIT_AUTHOR_DATE": EXTRA_DATE,
           "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": mail,
           "GIT_COMMITTER_DATE": EXTRA_DATE}
    with tempfile.TemporaryDirectory(prefix="kseries-extra-") as scratch:
        clone = Path(scratch) / "clone"
        g.git(repo, "clone", "-q", "--shared", "--no-checkout", str(repo), str(clone))
        g.git(clone, "read-tree", commit)
        contents = {f: overlay.source(f).read_text() for f in overlay.files}
        for hook in overlay.hooks:
            original = contents.get(hook.file) or g.file_at(clone, commit, hook.file)
            contents[hook.file] = apply_hook(original, hook)
        for path, text in sorted(contents.items()):
            blob = g.git(clone, "hash-object", "-w", "--stdin", input_text=text)
            g.git(clone, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = g.git(clone, "write-tree")
        new = g.git(clone, "commit-tree", tree, "-p", commit, "-F", "-", env=env,
                    input_text=message)
        return g.format_patch(clone, "-1", new) + "\n"
