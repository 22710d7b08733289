"""Kernel configs: arch defconfig + Kconfig.fragments + olddefconfig, validated with kconfiglib.

merge_config() runs the kernel's own make targets (defconfig, olddefconfig) in an O= build dir
and merges the fragments in between (as scripts/kconfig/merge_config.sh -m does). A hash stamp
of every input (the tree's Kconfig files and arch configs, the fragments, the compiler) lets a
second call with unchanged inputs return at once, and the build dir remembers the .config of
the last few input sets: one build dir serves series whose heads differ in a Kconfig file (v3
adds its suite's symbol), and a switch between them puts the known .config back instead of
running defconfig and olddefconfig again.

validate_config() loads the tree's Kconfig with kconfiglib and checks that every symbol a
fragment asks for has that value in the resulting .config; when not, the problem names the unmet
dependency found by kconfiglib's expression evaluation. can_enable() tells whether a symbol can
be enabled at all on an arch (used for the build coverage matrix).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import kconfiglib

from kseries.core import events, paths, stamped
from kseries.core import git as g
from kseries.core.errors import KseriesError
from kseries.core.proc import command_line, run
from kseries.kernel.arches import Arch, make_command, toolchain_version
from kseries.kernel.tree import kernel_version

FRAGMENTS_DIR = paths.FRAGMENTS_DIR
BUILD_FRAGMENTS = ("common.config", "kunit-suite.config", "virtio-mem.config", "{arch}.config")
ARCHES_HEADER_RE = re.compile(r"^#\s*arches:\s*(.+)$", re.MULTILINE)
# A fragment for a symbol that only some trees define (the suite a series adds).
NEEDS_HEADER_RE = re.compile(r"^#\s*needs:\s*([A-Za-z0-9_]+)\s*$", re.MULTILINE)
SET_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
UNSET_RE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")
STAMP = ".kseries-config.stamp"
KNOWN_CONFIGS = ".kseries-configs"
KNOWN_CONFIGS_KEPT = 8
VALIDATED = ".kseries-validated.json"
MISSING = "symbol does not exist in this tree"


@dataclass(frozen=True)
class KconfigProblem:
    """A fragment symbol that did not get the value asked for, and why."""

    symbol: str
    wanted: str
    got: str
    reason: str

    def __str__(self) -> str:
        return f"CONFIG_{self.symbol}={self.wanted} wanted, got {self.got}: {self.reason}"


# -- fragments ------------------------------------------------------------------------------


def read_config_values(text: str) -> dict[str, str]:
    """SYMBOL -> value of a .config or fragment ('n' for '# CONFIG_X is not set')."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if match := SET_RE.match(line):
            values[match.group(1)] = match.group(2)
        elif match := UNSET_RE.match(line):
            values[match.group(1)] = "n"
    return values


def read_fragment(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KseriesError(f"Kconfig fragment {path} does not exist") from None
    values = read_config_values(text)
    bad = [line for line in text.splitlines() if line.strip() and not line.startswith("#")
           and not SET_RE.match(line.strip())]
    if bad:
        raise KseriesError(f"{path}: not a Kconfig fragment line: '{bad[0]}' (expected "
                           "CONFIG_FOO=y or '# CONFIG_FOO is not set')")
    return values


def fragment_arches(path: Path) -> tuple[str, ...] | None:
    """The arches a fragment is for ('# arches: x86_64 arm64' header), None = every arch."""
    found = ARCHES_HEADER_RE.search(path.read_text())
    return tuple(found.group(1).split()) if found else None


def fragment_needs(path: Path) -> str | None:
    """The symbol a fragment needs the tree to define ('# needs: FOO' header), if any."""
    found = NEEDS_HEADER_RE.search(path.read_text())
    return found.group(1) if found else None


def defines_symbol(tree: Path, symbol: str) -> bool:
    """Whether a Kconfig file of TREE's checked-out files declares SYMBOL."""
    found = g.run_git(tree, "grep", "-q", "-E", f"^[[:space:]]*(menu)?config {symbol}[[:space:]]*$",
                      "--", ":(glob)**/Kconfig*", check=False)
    return found.returncode == 0


def build_fragments(arch: Arch, directory: Path = FRAGMENTS_DIR,
                    tree: Path | None = None) -> list[Path]:
    """The fragments the build bot merges for ARCH, in merge order (later ones win); one
    with a '# needs: FOO' header only when TREE defines FOO (never without a TREE)."""
    paths = []
    for pattern in BUILD_FRAGMENTS:
        path = directory / pattern.format(arch=arch.name)
        if not path.is_file():
            continue
        wanted = fragment_arches(path)
        needs = fragment_needs(path)
        if needs is not None and (tree is None or not defines_symbol(tree, needs)):
            continue
        if wanted is None or arch.name in wanted:
            paths.append(path)
    return paths


def requested_values(fragments: Sequence[Path]) -> dict[str, str]:
    """Every symbol the fragments set, the last fragment winning (as merge_config.sh does)."""
    values: dict[str, str] = {}
    for fragment in fragments:
        values.update(read_fragment(fragment))
    return values


MERGE_CONFIG = "scripts/kconfig/merge_config.sh"


def merge_fragments(tree: Path, config: Path, fragments: Sequence[Path]) -> str:
    """The tree's own merge_config.sh -m (what tuxmake and KernelCI run): every fragment
    symbol replaced or appended in CONFIG, later fragments winning; make olddefconfig comes
    after. It makes its temporary files in the current directory: run it in CONFIG's."""
    script = tree / MERGE_CONFIG
    if not script.is_file():
        raise KseriesError(f"{script} is missing: the tree is not a Linux tree or is damaged; "
                           f"re-import it (kseries tree)")
    cmd = ["bash", str(script), "-m", "-O", str(config.parent), str(config),
           *(str(f.resolve()) for f in fragments)]
    proc = run(cmd, cwd=config.parent, check=False, env={"KCONFIG_CONFIG": ""}, timeout_s=120)
    text = f"$ {command_line(cmd, config.parent)}\n{proc.stdout}{proc.stderr}"
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise KseriesError(f"merge_config.sh failed: {lines[-1] if lines else 'no output'} "
                           f"(reproduce: {command_line(cmd, config.parent)})")
    return text


# -- merge with a stamp ---------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def config_input_files(tree: Path, arch: Arch) -> list[Path]:
    """Files whose content decides the merged config: Kconfig*, arch configs, Makefiles."""
    specs = [":(glob)**/Kconfig*", f"arch/{arch.kernel_arch}/configs/**", "Makefile",
             f"arch/{arch.kernel_arch}/Makefile", "scripts/kconfig/**", "scripts/Kconfig.include"]
    proc = g.run_git(tree, "ls-files", "-z", "--", *specs, check=False)
    if proc.returncode == 0 and proc.stdout:
        names = sorted(n for n in proc.stdout.split("\0") if n)
        return [tree / n for n in names]
    found = {p for p in tree.rglob("Kconfig*") if p.is_file()}
    found |= {p for p in (tree / "arch" / arch.kernel_arch / "configs").rglob("*") if p.is_file()}
    found |= {p for p in (tree / "scripts" / "kconfig").rglob("*") if p.is_file()}
    found |= {tree / "Makefile", tree / "arch" / arch.kernel_arch / "Makefile"}
    return sorted(p for p in found if p.is_file())


def config_inputs_hash(tree: Path, arch: Arch, fragments: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(repr((arch, toolchain_version(arch))).encode())
    for fragment in fragments:
        digest.update(fragment.name.encode() + b"\0" + fragment.read_bytes() + b"\0")
    for path in config_input_files(tree, arch):
        try:
            content = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        digest.update(str(path.relative_to(tree)).encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def merge_config(tree: Path, build_dir: Path, arch: Arch, fragments: Sequence[Path],
                 log: Path | None = None) -> Path:
    """defconfig + FRAGMENTS + olddefconfig in BUILD_DIR; a no-op when the inputs are unchanged."""
    return _merge(tree, build_dir, arch, fragments, config_inputs_hash(tree, arch, fragments),
                  log)


def _merge(tree: Path, build_dir: Path, arch: Arch, fragments: Sequence[Path], inputs: str,
           log: Path | None) -> Path:
    for fragment in fragments:
        read_fragment(fragment)
    config = build_dir / ".config"
    stamp = build_dir / STAMP
    if config.is_file() and stamp.is_file() and \
            stamp.read_text().split() == [inputs, _sha(config.read_bytes())]:
        events.emit("cache-hit", what=f"config {arch.name}", config=str(config))
        known = build_dir / KNOWN_CONFIGS / f"{inputs}.config"
        if not known.is_file():  # a build dir from before the configs were remembered
            _remember(config, known)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(f"# {config}: inputs unchanged (stamp {inputs[:16]}), "
                           f"{arch.defconfig} + fragments + olddefconfig not redone\n")
        return config
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    known = build_dir / KNOWN_CONFIGS / f"{inputs}.config"
    if known.is_file():
        _put_back(known, config)
        events.emit("cache-hit", what=f"config {arch.name}", config=str(config), known=True)
        output = [f"# {config}: the .config these inputs gave before (stamp {inputs[:16]}), "
                  f"{arch.defconfig} + fragments + olddefconfig not redone\n"]
    else:
        output = [_make(arch, tree, build_dir, arch.defconfig)]
        output.append(merge_fragments(tree, config, fragments))
        output.append(_make(arch, tree, build_dir, "olddefconfig"))
        _remember(config, known)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(output))
    stamp.write_text(f"{inputs} {_sha(config.read_bytes())}\n")
    return config


def _put_back(known: Path, config: Path) -> None:
    """KNOWN as CONFIG, through a rename (an interrupted copy leaves no half .config); when
    they are equal CONFIG is left alone, its mtime too, so make has nothing to redo."""
    data = known.read_bytes()
    if config.is_file() and config.read_bytes() == data:
        return
    partial = config.with_name(config.name + ".kseries-partial")
    partial.write_bytes(data)
    partial.replace(config)


def _remember(config: Path, known: Path) -> None:
    """Keep CONFIG as KNOWN, dropping the oldest beyond KNOWN_CONFIGS_KEPT."""
    known.parent.mkdir(exist_ok=True)
    partial = known.with_name(known.name + ".partial")
    partial.write_bytes(config.read_bytes())
    partial.replace(known)
    kept = sorted(known.parent.glob("*.config"), key=lambda p: p.stat().st_mtime_ns)
    for old in kept[:-KNOWN_CONFIGS_KEPT]:
        old.unlink(missing_ok=True)


def _make(arch: Arch, tree: Path, build_dir: Path, target: str) -> str:
    cmd = make_command(arch, tree, build_dir, target)
    proc = run(cmd, check=False)
    text = f"$ {command_line(cmd)}\n{proc.stdout}{proc.stderr}"
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        detail = lines[-1] if lines else "no output"
        raise KseriesError(f"{arch.name}: make {target} failed: {detail} (reproduce: "
                           f"{command_line(cmd)})")
    return text


# -- kconfiglib -----------------------------------------------------------------------------


class _Kconfig(kconfiglib.Kconfig):  # type: ignore[misc]
    """kconfiglib 14.1 predates the 'modules' attribute (Linux 6.2+): read it as the older
    'option modules', which means the same."""

    def _open(self, filename: str, mode: str) -> IO[str]:
        stream: IO[str] = super()._open(filename, mode)
        if mode != "r" or not os.path.basename(filename).startswith("Kconfig"):
            return stream
        with stream:
            text = stream.read()
        return io.StringIO(re.sub(r"(?m)^(\s+)modules\s*$", r"\1option modules", text))


def kconfig_environment(tree: Path, arch: Arch) -> dict[str, str]:
    """The variables the kernel's Makefile exports for Kconfig, for ARCH."""
    cross = arch.cross_compile
    return {
        "srctree": str(tree), "ARCH": arch.kernel_arch, "SRCARCH": arch.kernel_arch,
        "CROSS_COMPILE": cross, "CC": arch.cc, "LD": f"{cross}ld", "AR": f"{cross}ar",
        "NM": f"{cross}nm", "OBJCOPY": f"{cross}objcopy", "HOSTCC": "gcc", "HOSTCXX": "g++",
        "CC_VERSION_TEXT": toolchain_version(arch).replace("#", ""),
        "KERNELVERSION": kernel_version(tree), "CLANG_FLAGS": "", "RUSTC": "rustc",
        "BINDGEN": "bindgen", "PAHOLE": "pahole", "RUSTC_VERSION_TEXT": "",
    }


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """kconfiglib reads os.environ while parsing, and Kconfig's $(cc-option) makes scratch
    directories in the current directory: set VALUES and work in a temporary directory for
    that time only (the current directory may be the user's tree)."""
    saved = {key: os.environ.get(key) for key in values}
    cwd = os.getcwd()
    os.environ.update(values)
    try:
        with tempfile.TemporaryDirectory(prefix="kseries-kconfig-") as scratch:
            os.chdir(scratch)
            try:
                yield
            finally:
                os.chdir(cwd)
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _tri(value: int) -> str:
    return ("n", "m", "y")[value]


class KconfigTree:
    """The Kconfig of TREE for ARCH, parsed by kconfiglib, optionally with a .config loaded."""

    def __init__(self, tree: Path, arch: Arch, config: Path | None = None) -> None:
        self.tree = tree
        self.arch = arch
        with _environment(kconfig_environment(tree, arch)):
            try:
                self.kconf: Any = _Kconfig(str(tree / "Kconfig"), warn=False)
            except kconfiglib.KconfigError as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else "?"
                raise KseriesError(f"kconfiglib cannot parse {tree}/Kconfig for "
                                   f"ARCH={arch.kernel_arch}: {first}") from None
            if config is not None:
                self.kconf.load_config(str(config))
        self._possible: dict[str, tuple[bool, str]] = {}

    def symbol(self, name: str) -> Any:
        sym = self.kconf.syms.get(name)
        return sym if sym is not None and sym.nodes else None

    def value(self, name: str) -> str | None:
        sym = self.symbol(name)
        return None if sym is None else str(sym.str_value)

    # -- why a symbol did not get a value -------------------------------------------------

    def explain(self, name: str, wanted: str, depth: int = 0) -> str:
        """Why NAME cannot have the value WANTED under the loaded config."""
        sym = self.symbol(name)
        if sym is None:
            return MISSING
        if sym.type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            return self._explain_tristate(sym, wanted, depth)
        if sym.visibility == 0:
            return self._unmet_text(sym.direct_dep, 2, depth) or "it has no prompt"
        return f"{sym.name} is {sym.str_value!r} (a {kconfiglib.TYPE_TO_STR[sym.type]} out of " \
               "range or not accepted)"

    def _explain_tristate(self, sym: Any, wanted: str, depth: int) -> str:
        needed = {"n": 0, "m": 1, "y": 2}.get(wanted, 2)
        if needed > 0:
            if kconfiglib.expr_value(sym.direct_dep) < needed:
                return self._unmet_text(sym.direct_dep, needed, depth)
            if needed == 1 and sym.type == kconfiglib.TRISTATE and \
                    self.kconf.modules.tri_value == 0:
                return "CONFIG_MODULES is not set, so nothing can be =m"
            if sym.rev_dep is not self.kconf.n and kconfiglib.expr_value(sym.rev_dep) > needed:
                return f"selected =y by {self._true_terms(sym.rev_dep)}"
            if not any(node.prompt for node in sym.nodes):
                return (f"it has no prompt (set only by select or default); depends on "
                        f"{kconfiglib.expr_str(sym.direct_dep)}")
            if sym.choice is not None:
                return f"it is in a choice; {sym.choice.selection or 'another'} is selected"
            if needed == 1 and sym.type == kconfiglib.BOOL:
                return "it is a bool symbol, =m is not possible"
            return f"visibility is {_tri(sym.visibility)}"
        if sym.rev_dep is not self.kconf.n and kconfiglib.expr_value(sym.rev_dep) > 0:
            return f"selected by {self._true_terms(sym.rev_dep)}"
        if not any(node.prompt for node in sym.nodes):
            return "it has no prompt and its default is on"
        return f"it is {sym.str_value}"

    def _true_terms(self, expr: Any) -> str:
        terms = [t for t in kconfiglib.split_expr(expr, kconfiglib.OR)
                 if kconfiglib.expr_value(t) > 0]
        return " || ".join(kconfiglib.expr_str(t) for t in terms) or kconfiglib.expr_str(expr)

    def _unmet_text(self, dep: Any, needed: int, depth: int) -> str:
        unmet = self.unmet_terms(dep, needed)
        text = f"depends on {kconfiglib.expr_str(dep)}; unmet: " + ", ".join(
            self._term_text(term, depth) for term in unmet)
        return text

    def _term_text(self, term: Any, depth: int) -> str:
        if isinstance(term, kconfiglib.Symbol) and not term.is_constant:
            if not term.nodes:
                return f"{term.name} (does not exist for ARCH={self.arch.kernel_arch})"
            text = f"{term.name}={term.str_value}"
            if depth < 2 and kconfiglib.expr_value(term.direct_dep) == 0:
                text += f" ({self._unmet_text(term.direct_dep, 2, depth + 1)})"
            return text
        return f"{kconfiglib.expr_str(term)} (={_tri(kconfiglib.expr_value(term))})"

    def unmet_terms(self, expr: Any, needed: int = 2) -> list[Any]:
        """The smallest parts of EXPR that keep it below NEEDED (the unmet dependencies)."""
        if kconfiglib.expr_value(expr) >= needed:
            return []
        if isinstance(expr, tuple) and expr[0] == kconfiglib.AND:
            return self.unmet_terms(expr[1], needed) + self.unmet_terms(expr[2], needed)
        return [expr]

    # -- could a symbol be enabled at all --------------------------------------------------

    def can_enable(self, name: str) -> tuple[bool, str]:
        """Whether NAME can be =y or =m on this arch (some configuration enables it)."""
        if name in self._possible:
            return self._possible[name]
        self._possible[name] = (False, "dependency loop")
        result = self._can_enable(name)
        self._possible[name] = result
        return result

    def _can_enable(self, name: str) -> tuple[bool, str]:
        sym = self.symbol(name)
        if sym is None:
            return False, f"CONFIG_{name} does not exist for ARCH={self.arch.kernel_arch}"
        if sym.tri_value > 0:
            return True, ""
        if sym.type not in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            return True, ""
        ok, why = self._possible_expr(sym.direct_dep)
        if not ok:
            return False, (f"CONFIG_{name} depends on {kconfiglib.expr_str(sym.direct_dep)}; "
                           f"{why}")
        prompted = any(node.prompt and self._possible_expr(node.prompt[1])[0]
                       for node in sym.nodes)
        defaulted = any(self._possible_expr(cond)[0] and self._possible_expr(value)[0]
                        for value, cond in sym.defaults)
        selected = sym.rev_dep is not self.kconf.n and self._possible_expr(sym.rev_dep)[0]
        implied = sym.weak_rev_dep is not self.kconf.n and \
            self._possible_expr(sym.weak_rev_dep)[0]
        if prompted or defaulted or selected or implied:
            return True, ""
        return False, f"CONFIG_{name} has no prompt and nothing that selects it can be enabled"

    def _possible_expr(self, expr: Any) -> tuple[bool, str]:
        if isinstance(expr, kconfiglib.Symbol):
            if expr.is_constant:
                return expr.tri_value > 0, f"{expr.name} is constant"
            return self.can_enable(expr.name)
        if isinstance(expr, kconfiglib.Choice):
            return True, ""
        op = expr[0]
        if op == kconfiglib.AND:
            for part in (expr[1], expr[2]):
                ok, why = self._possible_expr(part)
                if not ok:
                    return False, why
            return True, ""
        if op == kconfiglib.OR:
            left, right = self._possible_expr(expr[1]), self._possible_expr(expr[2])
            if left[0] or right[0]:
                return True, ""
            return False, f"{left[1]}; {right[1]}"
        if op == kconfiglib.NOT:
            inner = expr[1]
            if kconfiglib.expr_value(inner) < 2:
                return True, ""
            if isinstance(inner, kconfiglib.Symbol) and any(n.prompt for n in inner.nodes):
                return True, ""
            return False, f"{kconfiglib.expr_str(inner)} is always y"
        if kconfiglib.expr_value(expr) > 0:
            return True, ""
        return False, f"{kconfiglib.expr_str(expr)} is false"


# -- validate and can_enable ----------------------------------------------------------------


def problems_in(kconfig: LazyKconfig, config_text: str, wanted: Mapping[str, str]
                ) -> list[KconfigProblem]:
    """Fragment symbols whose value in CONFIG_TEXT (the merged .config: what make really
    made of the fragments) differs from WANTED, each with kconfiglib's reason. kconfiglib
    is only asked when a value did not stick; if it cannot parse the tree (newer Kconfig
    syntax than it knows), the problem stays and its reason says so."""
    got_values = read_config_values(config_text)
    problems = []
    for symbol, value in wanted.items():
        got = got_values.get(symbol, "n")
        if _same(got, value):
            continue
        if not defines_symbol(kconfig.tree, symbol):
            problems.append(KconfigProblem(symbol, value, "(undefined)", MISSING))
            continue
        problems.append(KconfigProblem(symbol, value, got, explain(kconfig, symbol, value)))
    return problems


def explain(kconfig: LazyKconfig, symbol: str, value: str) -> str:
    try:
        return kconfig.get().explain(symbol, value)
    except KseriesError as err:
        return f"kconfiglib cannot say why ({err})"


def _same(got: str, wanted: str) -> bool:
    return got == wanted or got.strip('"') == wanted.strip('"')


def validate_config(tree: Path, build_dir: Path, arch: Arch, fragments: Sequence[Path]
                    ) -> list[KconfigProblem]:
    """Merge (if needed), then check every fragment symbol got its value; cached per stamp."""
    return list(setup_config(tree, build_dir, arch, fragments).problems)


class LazyKconfig:
    """A KconfigTree parsed on first use only (parsing takes seconds; caches often answer)."""

    def __init__(self, tree: Path, arch: Arch, config: Path) -> None:
        self.tree, self.arch, self.config = tree, arch, config
        self._loaded: KconfigTree | None = None

    def get(self) -> KconfigTree:
        if self._loaded is None:
            self._loaded = KconfigTree(self.tree, self.arch, self.config)
        return self._loaded


@dataclass(frozen=True)
class ConfigResult:
    """A merged and validated config: the .config, its stamp, the fragment problems, and
    the tree's Kconfig for further questions (loaded only if asked)."""

    config: Path
    stamp: str
    problems: tuple[KconfigProblem, ...]
    kconfig: LazyKconfig


def setup_config(tree: Path, build_dir: Path, arch: Arch, fragments: Sequence[Path],
                 log: Path | None = None) -> ConfigResult:
    """merge_config + validate_config, hashing the inputs once; validation is cached in the
    build dir per stamp (inputs and resulting .config)."""
    inputs = config_inputs_hash(tree, arch, fragments)
    config = _merge(tree, build_dir, arch, fragments, inputs, log)
    stamp = f"{inputs} {_sha(config.read_bytes())}"
    kconfig = LazyKconfig(tree, arch, config)
    cache = build_dir / VALIDATED
    saved = stamped.load(cache, stamp)
    if isinstance(saved, list):
        with suppress(TypeError):
            problems = tuple(KconfigProblem(**p) for p in saved)
            return ConfigResult(config, stamp, problems, kconfig)
    problems = tuple(problems_in(kconfig, config.read_text(), requested_values(fragments)))
    stamped.save(cache, stamp, [asdict(p) for p in problems])
    return ConfigResult(config, stamp, problems, kconfig)


def can_enable(tree: Path, arch: Arch, symbol: str, config: Path | None = None
               ) -> tuple[bool, str]:
    """Whether SYMBOL can be set (=y/=m) on ARCH, and the reason when not."""
    return KconfigTree(tree, arch, config).can_enable(symbol)
