"""Initramfs images written by Python: a newc cpio archive, no root and no staging tree.

Entries are built in memory (owner root, mtime 0, so the same inputs give the same bytes)
and written in one go, so nothing root-owned is left behind in a temp dir and device nodes
such as /dev/console need no mknod.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kseries.core.errors import KseriesError
from kseries.core.proc import run

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"
LDD_LINE_RE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)\s*$")


@dataclass(frozen=True)
class Entry:
    """One archive member: PATH inside the image (no leading slash) and its st_mode.

    DATA is a file's content or a symlink's target; RDEV is (major, minor) of a device node.
    """

    path: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(path: str) -> Entry:
    return Entry(_clean(path), stat.S_IFDIR | 0o755)


def regular(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(_clean(path), stat.S_IFREG | (0o755 if executable else 0o644), data)


def symlink(path: str, target: str) -> Entry:
    return Entry(_clean(path), stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int) -> Entry:
    return Entry(_clean(path), stat.S_IFCHR | 0o600, rdev=(major, minor))


def host_file(path: str, source: Path, executable: bool | None = None) -> Entry:
    """SOURCE's content (symlinks followed) at PATH; executable if SOURCE is, or as told."""
    try:
        data = source.read_bytes()
        if executable is None:
            executable = bool(source.stat().st_mode & 0o111)
    except OSError as err:
        raise KseriesError(f"cannot read {source} for the initramfs: {err.strerror}") from None
    return regular(path, data, executable)


def _clean(path: str) -> str:
    clean = str(PurePosixPath("/", path)).lstrip("/")
    if not clean or ".." in PurePosixPath(clean).parts:
        raise KseriesError(f"bad initramfs path '{path}'")
    return clean


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """ENTRIES with every missing parent directory added before its first child.

    A later entry for the same path replaces an earlier one (overlays win).
    """
    by_path: dict[str, Entry] = {}
    for entry in entries:
        parts = PurePosixPath(entry.path).parts
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_path.setdefault(parent, directory(parent))
        by_path.pop(entry.path, None)
        by_path[entry.path] = entry
    return sorted(by_path.values(), key=lambda e: PurePosixPath(e.path).parts)


def newc_archive(entries: Iterable[Entry]) -> bytes:
    """A cpio archive in the kernel's "newc" format (see usr/gen_init_cpio.c)."""
    chunks: list[bytes] = []
    for inode, entry in enumerate(with_parents(entries), start=1):
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        chunks.append(_member(entry.path, entry.mode, entry.data, inode, nlink, entry.rdev))
    chunks.append(_member(TRAILER, 0, b"", 0, 1, (0, 0)))
    return b"".join(chunks)


def _member(name: str, mode: int, data: bytes, inode: int, nlink: int,
            rdev: tuple[int, int]) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = NEWC_MAGIC + b"".join(b"%08x" % value for value in fields) + encoded
    return _pad4(header) + _pad4(data)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def self_contained_archive(entries: Iterable[Entry], inner: str) -> bytes:
    """The archive of ENTRIES, then a second archive holding the first one at INNER.

    The kernel unpacks concatenated archives as one: the guest sees its own initramfs
    (without itself) at INNER and can hand it to the next kernel of a kexec, adding INNER
    again the same way (busybox cpio -o) so that kernel can do the same.
    """
    first = newc_archive(entries)
    return first + newc_archive([regular(inner, first)])


def write_archive(entries: Iterable[Entry], out: Path, inner: str | None = None) -> Path:
    """Write the archive to OUT atomically (a half-written image is never left as OUT); with
    INNER, the self-contained one (self_contained_archive)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    entries = list(entries)
    partial.write_bytes(newc_archive(entries) if inner is None
                        else self_contained_archive(entries, inner))
    partial.replace(out)
    return out


def shared_libraries(binary: Path) -> list[Path]:
    """The shared libraries BINARY loads, and its dynamic loader, as ldd reports them."""
    proc = run(["ldd", str(binary)], check=False)
    if "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    if proc.returncode != 0:
        raise KseriesError(f"ldd {binary} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    libraries = []
    for line in proc.stdout.splitlines():
        if "not found" in line:
            raise KseriesError(f"{binary} needs a library that is not installed: {line.strip()}")
        if match := LDD_LINE_RE.match(line):
            libraries.append(Path(match.group(2)))
    return libraries


def program(path: str, binary: Path) -> list[Entry]:
    """BINARY at PATH plus every shared library it needs, at the paths the loader uses."""
    entries = [host_file(path, binary)]
    entries += [host_file(str(lib), lib) for lib in shared_libraries(binary)]
    return entries


def busybox(binary: Path, applets_of: Path | None = None) -> list[Entry]:
    """A static busybox at /bin/busybox and a symlink for each of its applets, as APPLETS_OF
    (default: BINARY itself, which must then run here) lists them."""
    proc = run([str(applets_of or binary), "--list-full"], what="busybox --list-full")
    entries = [host_file("bin/busybox", binary)]
    for applet in proc.stdout.split():
        if applet != "bin/busybox":
            entries.append(symlink(applet, "/bin/busybox"))
    return entries


def directory_tree(path: str, source: Path, exclude: Sequence[str] = ()) -> list[Entry]:
    """Every regular file under SOURCE at PATH/<relative path> (names in EXCLUDE skipped)."""
    if not source.is_dir():
        raise KseriesError(f"{source} is not a directory (needed for the initramfs)")
    return [host_file(f"{path}/{item.relative_to(source)}", item)
            for item in sorted(source.rglob("*"))
            if item.is_file() and item.name not in exclude]


def base_layout() -> list[Entry]:
    """Mount points and the console node the kernel opens before it runs /init."""
    return [directory(d) for d in ("dev", "proc", "sys", "tmp", "run")] + [
        char_device("dev/console", 5, 1), char_device("dev/null", 1, 3)]
