"""Kbuild helpers: which Kconfig symbols gate compiling a source file.

We read Kbuild makefiles the way a person does: `obj-$(CONFIG_X) += foo.o`, composite
objects (`foo-y := a.o b.o`, `foo-objs`, `foo-$(CONFIG_Y) += c.o`), list variables
(`memory-hotplug-$(CONFIG_MEMORY_HOTPLUG) += memory_hotplug.o` with
`obj-y += $(memory-hotplug-y)`), `ifdef CONFIG_X` / `ifeq ($(CONFIG_X),y)` blocks, and
directories (`obj-$(CONFIG_X) += dir/`) up to the top of the tree. Sources under
arch/<arch>/ are also gated by that architecture. Symbols are returned with their
CONFIG_ prefix, as Makefiles and .config files spell them; a symbol from the `else` or
`ifndef` side of a conditional is returned as `!CONFIG_X`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kseries.core.errors import KseriesError

# The Kconfig symbol each arch/<dir> is built for.
ARCH_SYMBOLS: dict[str, str] = {
    "alpha": "CONFIG_ALPHA", "arc": "CONFIG_ARC", "arm": "CONFIG_ARM", "arm64": "CONFIG_ARM64",
    "csky": "CONFIG_CSKY", "hexagon": "CONFIG_HEXAGON", "loongarch": "CONFIG_LOONGARCH",
    "m68k": "CONFIG_M68K", "microblaze": "CONFIG_MICROBLAZE", "mips": "CONFIG_MIPS",
    "nios2": "CONFIG_NIOS2", "openrisc": "CONFIG_OPENRISC", "parisc": "CONFIG_PARISC",
    "powerpc": "CONFIG_PPC", "riscv": "CONFIG_RISCV", "s390": "CONFIG_S390",
    "sh": "CONFIG_SUPERH", "sparc": "CONFIG_SPARC", "um": "CONFIG_UML", "x86": "CONFIG_X86",
    "xtensa": "CONFIG_XTENSA",
}
# Variables whose objects and directories are linked into the kernel or a module.
LIST_PREFIXES = frozenset({"obj", "lib", "subdir", "core", "drivers", "libs", "net", "virt",
                           "init", "head"})

_REFERENCE = r"\$\((?:[^()]|\([^()]*\))*\)"
_ASSIGNMENT_RE = re.compile(
    rf"^\s*((?:[A-Za-z0-9_./-]|{_REFERENCE})+)\s*(\+=|:=|::=|\?=|=)\s*(.*)$")
_VARIABLE_RE = re.compile(rf"^(.+?)-(y|m|objs|{_REFERENCE})$")
_ITEM_RE = re.compile(rf"(?:{_REFERENCE}|[^\s$]|\$)+")
_CONFIG_RE = re.compile(r"CONFIG_[A-Za-z0-9_]+")
_CONDITIONAL_RE = re.compile(r"^\s*(ifdef|ifndef|ifeq|ifneq)\b\s*(.*)$")
_ELSE_RE = re.compile(r"^\s*else\b\s*(.*)$")
_ENDIF_RE = re.compile(r"^\s*endif\b")


@dataclass(frozen=True)
class Assignment:
    """One `variable op items` line, with the symbols of the conditionals around it."""

    variable: str
    items: tuple[str, ...]
    conditions: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Makefile:
    path: Path
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Gating:
    """Where a file is named and which symbols gate it, nearest first."""

    source: str
    named_in: tuple[str, ...]
    symbols: tuple[str, ...]


def object_for(source: str) -> str:
    """The object Kbuild makes from SOURCE: drivers/dax/kmem.c -> drivers/dax/kmem.o."""
    path = PurePosixPath(source)
    if path.suffix not in (".c", ".S"):
        raise KseriesError(f"{source} is not a .c or .S file; only those are compiled into objects")
    return str(path.with_suffix(".o"))


def arch_of(source: str) -> str | None:
    """The architecture directory a source lives in (arch/powerpc/... -> powerpc), if any."""
    parts = PurePosixPath(source).parts
    return parts[1] if len(parts) > 2 and parts[0] == "arch" else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined and comments removed, with start lines."""
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        line = re.sub(r"(?<!\\)#.*", "", pending + raw)
        pending = ""
        lines.append((start, line))
    if pending:
        lines.append((start, pending))
    return lines


def _condition_symbols(keyword: str, argument: str) -> tuple[str, ...]:
    """CONFIG symbols a conditional line tests, `!`-prefixed when it tests for 'not set'."""
    symbols = _CONFIG_RE.findall(argument)
    if keyword in ("ifdef", "ifndef"):
        positive = keyword == "ifdef"
    else:
        compared = re.match(r"^\((.*),(.*)\)\s*$", argument.strip())
        other = compared.group(2).strip() if compared else "y"
        if compared and not _CONFIG_RE.search(compared.group(1)):
            other = compared.group(1).strip()
        positive = (keyword == "ifeq") == (other not in ("", "n"))
    return tuple(s if positive else f"!{s}" for s in symbols)


def _negate(symbols: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s[1:] if s.startswith("!") else f"!{s}" for s in symbols)


def parse_makefile(path: Path) -> Makefile:
    """The assignments of a Kbuild makefile, each with its enclosing conditions."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise KseriesError(f"cannot read {path}: {err.strerror}; is the tree complete?") from None
    stack: list[tuple[str, ...]] = []
    assignments: list[Assignment] = []
    for number, line in _logical_lines(text):
        if conditional := _CONDITIONAL_RE.match(line):
            stack.append(_condition_symbols(conditional.group(1), conditional.group(2)))
        elif other := _ELSE_RE.match(line):
            if stack:
                stack[-1] = _negate(stack[-1])
            if nested := _CONDITIONAL_RE.match(other.group(1)):  # `else ifdef X` chains
                symbols = _condition_symbols(nested.group(1), nested.group(2))
                stack[-1] = stack[-1] + symbols
        elif _ENDIF_RE.match(line):
            if stack:
                stack.pop()
        elif assignment := _ASSIGNMENT_RE.match(line):
            items = tuple(_ITEM_RE.findall(assignment.group(3)))
            conditions = tuple(s for level in stack for s in level)
            assignments.append(Assignment(assignment.group(1), items, conditions, number))
    return Makefile(path, tuple(assignments))


@dataclass(frozen=True)
class KbuildTree:
    """Makefiles of one tree, each parsed once (a cache for one caller, not global state)."""

    root: Path
    _parsed: dict[str, Makefile | None] = field(default_factory=dict, compare=False, repr=False)

    def makefile(self, directory: str) -> Makefile | None:
        """The Kbuild (preferred, as kbuild does) or Makefile of DIRECTORY, parsed.

        At the top and in arch/<arch>/ both count: the top Makefile and the arch Makefile
        it includes list directories too (`libs-y := lib/`, `drivers-y += arch/x86/pci/`).
        """
        if directory not in self._parsed:
            base = self.root / directory
            names = [n for n in ("Kbuild", "Makefile") if (base / n).is_file()]
            if not (directory in (".", "") or _is_arch_root(directory)):
                names = names[:1]
            parsed = [parse_makefile(base / n) for n in names]
            self._parsed[directory] = Makefile(
                parsed[0].path, tuple(a for m in parsed for a in m.assignments)) if parsed else None
        return self._parsed[directory]

    def gating(self, source: str) -> Gating:
        """Where SOURCE's object and its directories are named, and the symbols that gate them."""
        target = object_for(source)
        directory, symbols = self._named_from(str(PurePosixPath(source).parent), target)
        if directory is None:
            raise KseriesError(f"{source}: {PurePosixPath(target).name} is not named in any "
                               "Makefile from its directory up; cannot tell what builds it")
        named_in, collected = [directory], list(symbols)
        while directory not in (".", "") and not _is_arch_root(directory):
            parent = str(PurePosixPath(directory).parent)
            found, symbols = self._named_from(parent, f"{directory}/")
            if found is None:
                break
            directory = found
            named_in.append(found)
            collected.extend(symbols)
        arch = arch_of(source)
        if arch is not None:
            collected.append(ARCH_SYMBOLS.get(arch, f"CONFIG_{arch.upper()}"))
        return Gating(source, tuple(named_in), tuple(dict.fromkeys(collected)))

    def _named_from(self, start: str, target: str) -> tuple[str | None, tuple[str, ...]]:
        """The nearest directory from START up whose makefile names TARGET, and its symbols."""
        directory = PurePosixPath(start)
        while True:
            makefile = self.makefile(str(directory))
            if makefile is not None:
                # Items are relative to the makefile's directory, except in the top and
                # arch Makefiles, which name paths from the top (arch/x86/pci/).
                for item in dict.fromkeys((_relative(target, str(directory)), target)):
                    symbols = _gates(makefile, item, set())
                    if symbols is not None:
                        return str(directory), symbols
            if str(directory) in (".", ""):
                return None, ()
            directory = directory.parent


def _relative(target: str, directory: str) -> str:
    if directory in (".", ""):
        return target
    return target[len(directory) + 1:] if target.startswith(f"{directory}/") else target


def _is_arch_root(directory: str) -> bool:
    parts = PurePosixPath(directory).parts
    return len(parts) <= 2 and bool(parts) and parts[0] == "arch"


def _names(item: str, target: str) -> bool:
    """Whether a makefile ITEM names TARGET; `init_$(BITS).o` names init_64.o."""
    if item == target:
        return True
    if "$(" not in item or re.fullmatch(_REFERENCE, item):
        return False
    pattern = "".join(".+" if re.fullmatch(_REFERENCE, part) else re.escape(part)
                      for part in re.split(f"({_REFERENCE})", item) if part)
    return re.fullmatch(pattern, target) is not None


def _gates(makefile: Makefile, target: str, seen: set[str]) -> tuple[str, ...] | None:
    """Symbols that gate TARGET (`foo.o`, `dir/`, `$(foo-y)`) in MAKEFILE; None if not named."""
    found, symbols = False, []
    for assignment in makefile.assignments:
        if not any(_names(item, target) for item in assignment.items):
            continue
        split = _VARIABLE_RE.match(assignment.variable)
        if split is None:
            continue
        base, condition = split.group(1), split.group(2)
        own = [*assignment.conditions, *_CONFIG_RE.findall(condition)]
        if base in LIST_PREFIXES:
            found = True
            symbols.extend(own)
            continue
        # A composite object (foo.o from foo-y) or a list variable used as $(foo-y).
        for parent in (f"{base}.o", f"$({base}-y)", f"$({base}-objs)"):
            if parent in seen:
                continue
            seen.add(parent)
            above = _gates(makefile, parent, seen)
            if above is not None:
                found = True
                symbols.extend([*own, *above])
    return tuple(dict.fromkeys(symbols)) if found else None


def gating_symbols(tree: Path, source: str) -> tuple[str, ...]:
    """The Kconfig symbols (CONFIG_ prefixed, nearest first) that gate compiling SOURCE.

    drivers/virtio/virtio_mem.c -> ("CONFIG_VIRTIO_MEM",); a powerpc platform file also
    yields its platform's symbol and CONFIG_PPC. An unconditional `obj-y` adds nothing.
    """
    return KbuildTree(tree).gating(source).symbols
