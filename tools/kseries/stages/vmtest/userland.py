"""A foreign-arch Debian userland for a guest initramfs, fetched without installing anything.

A guest of another arch (arm64 on an amd64 host) cannot use the host's busybox, kexec or
bash, and installing arm64 packages system-wide would drag in a second libc and fight the
host's packages. So we only teach apt about the arch (dpkg --add-architecture, once),
`apt-get download` the pinned candidates into the cache and `dpkg-deb -x` them into one
tree: <cache>/vm/userland/<arch>/root. A stamp beside the tree lists name=version of every
package in it, so a later call that resolves to the same set does no download and no
extraction.

Libraries are resolved with a small ELF reader (DT_NEEDED, PT_INTERP), not the host's ldd,
which can neither run nor load a foreign binary.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kseries.core.errors import InfraError, KseriesError
from kseries.core.proc import last_line, run

Progress = Callable[[str], None]

# What the vmtest guest runs: a shell and its applets, the kexec contract's tools, and bash
# for the selftest scripts.
GUEST_PACKAGES: tuple[str, ...] = ("busybox-static", "kexec-tools", "makedumpfile", "bash")

# `apt-cache depends` flags: only the relations a package needs to run (Depends and
# PreDepends), recursively.
DEPENDS_FLAGS: tuple[str, ...] = (
    "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
    "--no-replaces", "--no-enhances")

# Debian arch -> multiarch triplet, the directory under lib/ and usr/lib/ that holds its
# shared libraries (the guest's loader searches these first).
MULTIARCH: Mapping[str, str] = {
    "amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "armel": "arm-linux-gnueabi",
    "armhf": "arm-linux-gnueabihf", "i386": "i386-linux-gnu",
    "mips64el": "mips64el-linux-gnuabi64", "mipsel": "mipsel-linux-gnu",
    "ppc64el": "powerpc64le-linux-gnu", "riscv64": "riscv64-linux-gnu",
    "s390x": "s390x-linux-gnu",
}
PROGRAM_DIRS: tuple[str, ...] = ("bin", "sbin", "usr/bin", "usr/sbin")
STAMP_NAME = "root.stamp"
REMEDY_MIRROR = "check the Debian mirror in /etc/apt/sources.list and run apt-get update"

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ = 0, 1, 5, 10


@dataclass(frozen=True)
class Userland:
    """An extracted userland: ROOT holds every file of PACKAGES (name=version), for ARCH."""

    arch: str
    root: Path
    packages: tuple[str, ...]


@dataclass(frozen=True)
class PackageInfo:
    """The candidate apt would download for one package of the target arch."""

    name: str
    version: str
    architecture: str
    section: str

    @property
    def pin(self) -> str:
        return f"{self.name}={self.version}"


# --- fetching -----------------------------------------------------------------------------

def fetch_userland(cache: Path, debian_arch: str,
                   packages: Sequence[str] = GUEST_PACKAGES,
                   progress: Progress = print) -> Userland:
    """PACKAGES of DEBIAN_ARCH and the libraries they need, extracted under CACHE.

    A second call that resolves to the same name=version set returns the existing tree
    without downloading or extracting anything."""
    if not packages:
        raise KseriesError("no userland packages requested; name at least one Debian package")
    ensure_architecture(debian_arch, progress)
    wanted = resolve_packages(debian_arch, packages)
    base = cache / "vm" / "userland" / debian_arch
    pins = tuple(sorted(info.pin for info in wanted))
    userland = Userland(debian_arch, base / "root", pins)
    if read_stamp(base) == pins and userland.root.is_dir():
        return userland
    progress(f"userland: fetching {len(pins)} {debian_arch} packages")
    debs = download(base / "debs", debian_arch, wanted)
    build_root(base, debs, pins, progress)
    return userland


def ensure_architecture(arch: str, progress: Progress) -> None:
    """Make apt know ARCH's packages: add the arch and fetch its lists, only if missing.

    This is dpkg configuration, not an install: nothing of ARCH gets installed."""
    native = run(["dpkg", "--print-architecture"]).stdout.strip()
    foreign = run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if arch != native and arch not in foreign:
        progress(f"userland: dpkg --add-architecture {arch} and apt-get update")
        proc = run(["dpkg", "--add-architecture", arch], check=False)
        if proc.returncode != 0:
            raise InfraError(f"dpkg --add-architecture {arch} failed: "
                             f"{last_line(proc.stderr + proc.stdout)}; run it as root, "
                             "then apt-get update")
        apt_update(arch)
    elif not has_package_lists(arch):
        progress(f"userland: apt-get update (no {arch} package lists yet)")
        apt_update(arch)


def has_package_lists(arch: str) -> bool:
    """Whether apt has downloaded at least one Packages index for ARCH."""
    proc = run(["apt-get", "indextargets", "--format", "$(FILENAME)",
                "Created-By: Packages", f"Architecture: {arch}"], check=False)
    return any(Path(line).exists() for line in proc.stdout.split())


def apt_update(arch: str) -> None:
    proc = run(["apt-get", "update"], check=False)
    if proc.returncode != 0 or not has_package_lists(arch):
        raise InfraError(f"apt-get update for {arch} failed: "
                         f"{last_line(proc.stderr + proc.stdout)}; {REMEDY_MIRROR}")


# --- resolving ----------------------------------------------------------------------------
#
# `apt-cache depends --recurse` follows every alternative and every virtual package's
# providers, so taken as is it drags in cdebconf and its UI libraries (kexec-tools depends
# on debconf | debconf-2.0), perl and dpkg (makedumpfile's makedumpfile-R.pl wants perl),
# base-files, debianutils and awk (bash depends on them for maintainer scripts). None of
# that is needed to run the binaries. So we walk the graph it prints ourselves:
#   - the requested packages are always taken;
#   - from a taken package we follow a Depends/PreDepends group to its first alternative
#     that is a real package of the target arch in Debian's "libs" section (policy puts
#     shared libraries there), and drop the group otherwise;
#   - virtual packages (<name>) and arch:all or other-arch packages are never taken: they
#     carry no ELF library for the guest (debconf, perl-modules, readline-common, ...).
# gcc-12-base comes in through libgcc-s1 (it is arch-specific and in "libs"); it only holds
# docs and costs ~40 kB, so it is not special-cased. The tests check that every DT_NEEDED
# library of the programs resolves inside the tree, which is what the rule must guarantee.

Graph = Mapping[str, tuple[tuple[str, ...], ...]]


def resolve_packages(arch: str, packages: Sequence[str]) -> tuple[PackageInfo, ...]:
    """PACKAGES plus the library packages they need, as apt's candidates for ARCH."""
    graph = dependency_graph(arch, packages)
    names = set(graph) | {alt for groups in graph.values() for g in groups for alt in g}
    infos = package_infos(arch, sorted(names | set(packages)))
    missing = [name for name in packages if name not in infos]
    if missing:
        raise KseriesError(f"no {arch} package named {', '.join(missing)} in apt's lists; "
                           f"check the name, or {REMEDY_MIRROR}")
    return tuple(infos[name] for name in library_closure(arch, packages, graph, infos))


def dependency_graph(arch: str, packages: Sequence[str]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """package -> its Depends/PreDepends groups (alternatives of the target arch only)."""
    proc = run(["apt-cache", "depends", *DEPENDS_FLAGS, *(f"{p}:{arch}" for p in packages)],
               check=False)
    if proc.returncode != 0:
        raise InfraError(f"apt-cache depends for {arch} failed: "
                         f"{last_line(proc.stderr + proc.stdout)}; {REMEDY_MIRROR}")
    native = arch == run(["dpkg", "--print-architecture"]).stdout.strip()
    return parse_depends(proc.stdout, arch, native)


def parse_depends(text: str, arch: str, native: bool) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Parse `apt-cache depends` output. ' |Depends: a' means 'a or the next line';
    four-space lines are a virtual package's providers, which we never take."""
    graph: dict[str, list[tuple[str, ...]]] = {}
    current: list[tuple[str, ...]] | None = None
    pending: list[str] = []
    for line in text.splitlines():
        if line and not line.startswith(" "):
            name = own_name(line.strip(), arch, native)
            current = None if name is None or name in graph else graph.setdefault(name, [])
            continue
        relation, _, target = line[2:].partition(": ")
        if current is None or relation not in ("Depends", "PreDepends"):
            continue
        if (name := own_name(target.strip(), arch, native)) is not None:
            pending.append(name)
        if line[1] != "|":
            current.append(tuple(pending))
            pending = []
    return {name: tuple(groups) for name, groups in graph.items()}


def own_name(token: str, arch: str, native: bool) -> str | None:
    """The bare name if TOKEN is a real package of ARCH in apt's output, else None."""
    if token.startswith("<"):
        return None
    name, _, qualifier = token.partition(":")
    if qualifier == arch or (not qualifier and native):
        return name
    return None


def package_infos(arch: str, names: Sequence[str]) -> dict[str, PackageInfo]:
    """Candidate version, architecture and section of each of NAMES for ARCH (names apt does
    not know are absent from the result)."""
    proc = run(["apt-cache", "show", "--no-all-versions", *(f"{n}:{arch}" for n in names)],
               check=False)
    infos: dict[str, PackageInfo] = {}
    for stanza in proc.stdout.split("\n\n"):
        fields = control_fields(stanza)
        if "Package" in fields and "Version" in fields:
            infos.setdefault(fields["Package"], PackageInfo(
                fields["Package"], fields["Version"], fields.get("Architecture", ""),
                fields.get("Section", "")))
    return infos


def control_fields(stanza: str) -> dict[str, str]:
    """The single-line fields of one deb822 stanza (continuation lines are skipped)."""
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line and not line[0].isspace() and ": " in line:
            key, value = line.split(": ", 1)
            fields[key] = value.strip()
    return fields


def library_closure(arch: str, packages: Sequence[str], graph: Graph,
                    infos: Mapping[str, PackageInfo]) -> list[str]:
    """PACKAGES, then breadth-first every library package they need (rule above)."""
    taken: list[str] = []
    queue = list(packages)
    while queue:
        name = queue.pop(0)
        if name in taken:
            continue
        taken.append(name)
        for group in graph.get(name, ()):
            pick = next((alt for alt in group
                         if alt in infos and is_library(infos[alt], arch)), None)
            if pick is not None:
                queue.append(pick)
    return taken


def is_library(info: PackageInfo, arch: str) -> bool:
    return info.architecture == arch and info.section.rsplit("/", 1)[-1] == "libs"


# --- downloading and extracting ----------------------------------------------------------

def deb_name(info: PackageInfo) -> str:
    """The file name `apt-get download` gives the package (an epoch's ':' as %3a)."""
    return f"{info.name}_{info.version.replace(':', '%3a')}_{info.architecture}.deb"


def download(directory: Path, arch: str, wanted: Sequence[PackageInfo]) -> list[Path]:
    """Every WANTED .deb in DIRECTORY, downloading only those not there yet.

    apt-get writes into a .partial directory and finished files are moved in, so an
    interrupted download never leaves a truncated .deb that a later call would trust."""
    directory.mkdir(parents=True, exist_ok=True)
    missing = [info for info in wanted if not (directory / deb_name(info)).is_file()]
    if missing:
        partial = fresh_dir(directory.with_name(directory.name + ".partial"))
        specs = [f"{info.name}:{arch}={info.version}" for info in missing]
        proc = run(["apt-get", "download", *specs], cwd=partial, check=False)
        if proc.returncode != 0:
            raise InfraError(f"apt-get download of {len(specs)} {arch} packages failed: "
                             f"{last_line(proc.stderr + proc.stdout)}; {REMEDY_MIRROR}")
        for info in missing:
            fetched = partial / deb_name(info)
            if not fetched.is_file():
                raise InfraError(f"apt-get download {info.name}:{arch}={info.version} wrote "
                                 f"no {fetched.name}; {REMEDY_MIRROR}")
            fetched.replace(directory / fetched.name)
        shutil.rmtree(partial)
    return [directory / deb_name(info) for info in wanted]


def build_root(base: Path, debs: Sequence[Path], pins: tuple[str, ...],
               progress: Progress) -> None:
    """Extract DEBS into base/root.partial, then swap it in and write the stamp.

    The stamp goes first and comes back last, so a tree without a matching stamp is
    never trusted, whatever point an interruption hits."""
    (base / STAMP_NAME).unlink(missing_ok=True)
    partial = fresh_dir(base / "root.partial")
    progress(f"userland: extracting {len(debs)} packages into {base / 'root'}")
    for deb in debs:
        run(["dpkg-deb", "-x", str(deb), str(partial)], what=f"dpkg-deb -x {deb.name}")
    relativize_symlinks(partial)
    root = base / "root"
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    write_stamp(base, pins)


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def relativize_symlinks(root: Path) -> None:
    """Point absolute symlinks whose target is in the tree at it with a relative path.

    As extracted they name host paths: reading a library through one would read the
    host's file (or none), not the guest's. Links to paths the tree lacks stay as they are
    (kexec-tools' kexec.service -> /dev/null means the guest's /dev/null)."""
    for link in walk_symlinks(root):
        target = os.readlink(link)
        inside = root / target.lstrip("/")
        if target.startswith("/") and os.path.lexists(inside):
            link.unlink()
            link.symlink_to(os.path.relpath(inside, link.parent))


def walk_symlinks(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        for name in (*subdirs, *files):
            path = Path(directory, name)
            if path.is_symlink():
                yield path


def read_stamp(base: Path) -> tuple[str, ...] | None:
    try:
        return tuple((base / STAMP_NAME).read_text().split())
    except FileNotFoundError:
        return None


def write_stamp(base: Path, pins: tuple[str, ...]) -> None:
    partial = base / (STAMP_NAME + ".partial")
    partial.write_text("".join(f"{pin}\n" for pin in pins))
    partial.replace(base / STAMP_NAME)


# --- looking inside the tree --------------------------------------------------------------

def program_path(userland: Userland, name: str) -> Path:
    """Where program NAME is in the tree (bin, sbin, usr/bin, usr/sbin, in that order)."""
    for directory in PROGRAM_DIRS:
        path = userland.root / directory / name
        if path.is_file():
            return path
    raise KseriesError(f"no program '{name}' in the {userland.arch} userland at "
                       f"{userland.root}; add the Debian package that ships it")


@dataclass(frozen=True)
class ElfDynamic:
    """What the dynamic loader reads from an ELF file: its e_machine, its PT_INTERP and
    its DT_NEEDED entries (none of either for a static binary)."""

    machine: int
    interpreter: str | None
    needed: tuple[str, ...]


@dataclass(frozen=True)
class ElfLayout:
    """struct formats for one ELF class and byte order."""

    endian: str
    header: str
    phdr: str
    dyn: str

    def unpack(self, fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
        return struct.unpack_from(self.endian + fmt, data, offset)


ELF64 = ("HHIQQQIHHHHHH", "IIQQQQQQ", "qQ")
ELF32 = ("HHIIIIIHHHHHH", "IIIIIIII", "iI")


def read_elf(path: Path) -> ElfDynamic:
    """Parse PATH's ELF header, program headers and dynamic section (32/64-bit, LE/BE)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise KseriesError(f"{path} is not an ELF file; expected a binary or library")
    header, phdr, dyn = ELF64 if data[4] == 2 else ELF32
    layout = ElfLayout("<" if data[5] == 1 else ">", header, phdr, dyn)
    try:
        return parse_elf(data, layout)
    except (struct.error, IndexError, UnicodeDecodeError):
        raise KseriesError(f"{path} is a truncated or corrupt ELF file; "
                           "delete the userland cache and fetch again") from None


def parse_elf(data: bytes, layout: ElfLayout) -> ElfDynamic:
    fields = layout.unpack(layout.header, data, 16)
    machine, phoff, phentsize, phnum = fields[1], fields[4], fields[8], fields[9]
    segments = [program_header(layout, data, phoff + i * phentsize) for i in range(phnum)]
    loads = [(vaddr, offset, size) for kind, offset, vaddr, size in segments if kind == PT_LOAD]
    interpreter = None
    needed: tuple[str, ...] = ()
    for kind, offset, _vaddr, size in segments:
        if kind == PT_INTERP:
            interpreter = data[offset:offset + size].split(b"\0", 1)[0].decode()
        elif kind == PT_DYNAMIC:
            needed = dynamic_needed(data, layout, offset, size, loads)
    return ElfDynamic(machine, interpreter, needed)


def program_header(layout: ElfLayout, data: bytes, at: int) -> tuple[int, int, int, int]:
    """(p_type, p_offset, p_vaddr, p_filesz) of the program header at AT."""
    values = layout.unpack(layout.phdr, data, at)
    if layout.phdr == ELF64[1]:
        return values[0], values[2], values[3], values[5]
    return values[0], values[1], values[2], values[4]


def dynamic_needed(data: bytes, layout: ElfLayout, offset: int, size: int,
                   loads: Sequence[tuple[int, int, int]]) -> tuple[str, ...]:
    """DT_NEEDED names: string offsets into DT_STRTAB, a virtual address mapped to the file
    through the PT_LOAD segments."""
    entry_size = struct.calcsize(layout.endian + layout.dyn)
    tags: list[tuple[int, int]] = []
    for at in range(offset, offset + size - entry_size + 1, entry_size):
        tag, value = layout.unpack(layout.dyn, data, at)
        if tag == DT_NULL:
            break
        tags.append((tag, value))
    strtab = next((value for tag, value in tags if tag == DT_STRTAB), None)
    if strtab is None:
        return ()
    base = file_offset(strtab, loads)
    return tuple(data[base + value:data.index(b"\0", base + value)].decode()
                 for tag, value in tags if tag == DT_NEEDED)


def file_offset(address: int, loads: Sequence[tuple[int, int, int]]) -> int:
    for vaddr, offset, size in loads:
        if vaddr <= address < vaddr + size:
            return address - vaddr + offset
    raise IndexError(address)


def library_dirs(userland: Userland) -> tuple[str, ...]:
    """The guest loader's default search path, multiarch directories first."""
    triplet = MULTIARCH.get(userland.arch)
    if triplet is None:
        raise KseriesError(f"unknown multiarch triplet for Debian arch '{userland.arch}'; "
                           f"add it to MULTIARCH in {__name__}")
    return (f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib")


def shared_libraries(userland: Userland, binary: Path) -> list[Path]:
    """The dynamic loader and every library BINARY loads, recursively, as paths in the tree
    at the place the guest's loader looks (a static binary needs none).

    BINARY is a path in the tree or relative to its root. A library no extracted package
    provides is an error: the guest would fail to exec the program."""
    binary = binary if binary.is_absolute() else userland.root / binary
    dirs = library_dirs(userland)
    found: list[Path] = []
    queue = [binary]
    while queue:
        elf = read_elf(queue.pop(0))
        wanted = ([elf.interpreter] if elf.interpreter else []) + list(elf.needed)
        for name in wanted:
            path = locate_library(userland, dirs, name, binary)
            if path not in found:
                found.append(path)
                queue.append(path)
    return found


def locate_library(userland: Userland, dirs: Sequence[str], name: str, binary: Path) -> Path:
    """NAME (a soname, or an absolute path such as PT_INTERP) inside the tree."""
    root = userland.root
    candidates = [root / name.lstrip("/")] if "/" in name else [root / d / name for d in dirs]
    for path in candidates:
        if path.is_file() and path.resolve().is_relative_to(root.resolve()):
            return path
    raise KseriesError(f"{binary.name} needs {name}, which no package in the {userland.arch} "
                       f"userland provides; add the package that ships it")
