"""What every subcommand resolves first: the series config, the tree, the mbox, the out dir."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from kseries.core.errors import KseriesError
from kseries.kernel.compile_env import compile_env
from kseries.kernel.tree import Tree, cache_dir, open_user_tree, provide_default_tree
from kseries.series.config import SeriesConfig, load_series


@dataclass(frozen=True)
class Options:
    """Common command-line options, already parsed."""

    series_file: Path | None
    cache_dir: Path | None
    tree: Path | None
    revision: str | None
    mbox: Path | None
    out: Path
    base_version: str | None = None
    thread_revision: int | None = None


@dataclass(frozen=True)
class Context:
    config: SeriesConfig
    cache: Path
    options: Options
    # What every kernel compile gets on top of our environment (kernel/compile_env.py: a
    # shared ccache, distcc); made once from the user's environment by make_context.
    compile_env: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def out(self) -> Path:
        return self.options.out

    @property
    def revision_name(self) -> str:
        if self.options.mbox is not None:
            return self.options.mbox.stem
        return self.config.revision(self.options.revision).name

    def mbox_path(self) -> Path:
        if self.options.mbox is not None:
            return self.options.mbox
        return self.config.revision(self.options.revision).mbox

    def tree(self) -> Tree:
        if self.options.tree is not None:
            return open_user_tree(self.options.tree)
        return provide_default_tree(self.cache, self.config.base, progress)


def make_context(options: Options, environ: Mapping[str, str] | None = None) -> Context:
    """The Context of OPTIONS; ENVIRON is the user's environment (the CLI passes os.environ,
    tests nothing: their compiles then get no shared cache or distcc)."""
    config = load_series(options.series_file)
    if options.base_version:
        config = with_base_version(config, options.base_version)
    if options.revision and options.mbox:
        raise KseriesError("--revision and --mbox both given; pass one of them")
    if options.thread_revision is not None and options.mbox is None:
        raise KseriesError("--thread-revision picks a revision of an --mbox thread; pass "
                           "--mbox too (or --revision vN for a revision in series.toml)")
    if options.mbox == Path("-"):
        options = replace(options, mbox=saved_stdin(options.out))
    # Stages run tools in the scratch worktree (kunit.py, make O=...): an --out relative to
    # the caller's directory would point elsewhere there.
    options = replace(options, out=options.out.resolve())
    return Context(config, cache_dir(options.cache_dir), options, compile_env(environ or {}))


def saved_stdin(out: Path) -> Path:
    """`--mbox -`: the thread on stdin, kept in the out dir (stdin can be read once, and the
    report's reproducer needs a file)."""
    if sys.stdin.isatty():
        raise KseriesError("--mbox - reads a thread from stdin, but stdin is a terminal; "
                           "pipe the mbox in (kseries ... --mbox - < thread.mbox)")
    data = sys.stdin.buffer.read()
    if not data.strip():
        raise KseriesError("--mbox -: stdin was empty; pipe a thread mbox in")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "stdin.mbox"
    path.write_bytes(data)
    return path


def with_base_version(config: SeriesConfig, version: str) -> SeriesConfig:
    return replace(config, base=replace(config.base, version=version))


LOG = logging.getLogger("kseries")


def progress(message: str) -> None:
    """A progress line for long steps: logged at INFO, which the CLI prints on stderr with a
    timestamp (stdout stays the result); -q hides it, -v adds debug lines."""
    LOG.info(message)


def setup_logging(verbosity: int) -> None:
    """-q (-1): warnings only; default (0): progress; -v (1+): debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(level)
    LOG.propagate = False
