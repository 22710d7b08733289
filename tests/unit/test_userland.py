"""The arm64 guest userland, fetched for real from the Debian mirror through apt (a few MB,
once per module) and checked with the module's own ELF reader against the ELF headers."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kseries.core.errors import KseriesError
from kseries.stages.vmtest import userland as ul

ARCH = "arm64"
EM_AARCH64 = 183
PROGRAMS = {"busybox": "bin/busybox", "kexec": "sbin/kexec",
            "makedumpfile": "usr/bin/makedumpfile", "bash": "bin/bash"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("userland-cache")


@pytest.fixture(scope="module")
def userland(cache: Path) -> ul.Userland:
    start = time.monotonic()
    fetched = ul.fetch_userland(cache, ARCH, ul.GUEST_PACKAGES, progress=lambda _line: None)
    print(f"cold fetch: {time.monotonic() - start:.1f} s")
    return fetched


def e_machine(path: Path) -> int:
    """e_machine straight from the ELF header bytes (little-endian ELF only)."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    assert header[5] == 1, f"{path} is not little-endian"
    return int.from_bytes(header[18:20], "little")


def test_userland_lists_the_programs_and_their_libraries(userland: ul.Userland) -> None:
    names = {pin.split("=", 1)[0] for pin in userland.packages}
    assert set(ul.GUEST_PACKAGES) <= names
    assert {"libc6", "zlib1g", "libelf1", "libdw1", "liblzo2-2", "libtinfo6"} <= names
    # The walk takes libraries only: no maintainer-script or debconf baggage.
    assert not names & {"debconf", "cdebconf", "perl", "perl-base", "dpkg", "base-files",
                        "debianutils", "gawk", "mawk"}
    assert userland.arch == ARCH
    assert (userland.root.parent / ul.STAMP_NAME).read_text().split() == list(userland.packages)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_programs_are_aarch64_elf_in_the_root(userland: ul.Userland, name: str) -> None:
    path = ul.program_path(userland, name)
    assert path == userland.root / PROGRAMS[name]
    assert os.access(path, os.X_OK)
    assert e_machine(path) == EM_AARCH64


def test_busybox_is_static(userland: ul.Userland) -> None:
    binary = ul.program_path(userland, "busybox")
    assert ul.read_elf(binary).interpreter is None
    assert ul.shared_libraries(userland, binary) == []


@pytest.mark.parametrize("name", ["kexec", "makedumpfile", "bash"])
def test_shared_libraries_resolve_inside_the_root(userland: ul.Userland, name: str) -> None:
    binary = ul.program_path(userland, name)
    libraries = ul.shared_libraries(userland, binary)
    relative = {str(lib.relative_to(userland.root)) for lib in libraries}
    assert "lib/ld-linux-aarch64.so.1" in relative
    assert "lib/aarch64-linux-gnu/libc.so.6" in relative
    root = userland.root.resolve()
    for lib in libraries:
        assert lib.resolve().is_relative_to(root), lib
        assert e_machine(lib) == EM_AARCH64, lib
    # Every DT_NEEDED of every file on the list is itself on the list.
    sonames = {lib.name for lib in libraries}
    for elf in (binary, *libraries):
        assert set(ul.read_elf(elf).needed) <= sonames, elf


def test_makedumpfile_gets_its_compression_libraries(userland: ul.Userland) -> None:
    binary = ul.program_path(userland, "makedumpfile")
    sonames = {lib.name for lib in ul.shared_libraries(userland, binary)}
    assert {"liblzo2.so.2", "libdw.so.1", "libelf.so.1", "libz.so.1", "libbz2.so.1.0",
            "liblzma.so.5"} <= sonames


def snapshot(base: Path) -> dict[str, tuple[int, int]]:
    paths = [base / "debs", base / "root", base / ul.STAMP_NAME, *(base / "debs").iterdir()]
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_second_fetch_is_a_no_op(userland: ul.Userland, cache: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    base = userland.root.parent
    before = snapshot(base)
    commands: list[list[str]] = []
    real_run = ul.run

    def counting_run(cmd: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append([str(part) for part in cmd])
        result: subprocess.CompletedProcess[str] = real_run(cmd, **kwargs)
        return result

    monkeypatch.setattr(ul, "run", counting_run)
    start = time.monotonic()
    again = ul.fetch_userland(cache, ARCH, ul.GUEST_PACKAGES, progress=lambda _line: None)
    print(f"warm fetch: {time.monotonic() - start:.1f} s")
    assert again == userland
    assert snapshot(base) == before
    changing = [c for c in commands if c[:2] in (["apt-get", "download"], ["apt-get", "update"])
                or c[0] == "dpkg-deb" or "--add-architecture" in c]
    assert changing == []
    assert not (base / "root.partial").exists()
    assert not (base / "debs.partial").exists()


def test_unknown_package_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(KseriesError) as caught:
        ul.fetch_userland(tmp_path, ARCH, ["busybox-static", "no-such-package-kseries"],
                          progress=lambda _line: None)
    message = str(caught.value)
    assert "\n" not in message
    assert "no-such-package-kseries" in message and "arm64" in message
    assert not (tmp_path / "vm").exists()


def test_missing_program_and_library_are_one_line_errors(userland: ul.Userland) -> None:
    with pytest.raises(KseriesError, match="no program 'no-such-tool'"):
        ul.program_path(userland, "no-such-tool")
    bare = ul.Userland(ARCH, userland.root / "usr" / "share", userland.packages)
    kexec = ul.program_path(userland, "kexec")
    with pytest.raises(KseriesError, match=r"kexec needs /lib/ld-linux-aarch64\.so\.1"):
        ul.shared_libraries(bare, kexec)


def test_read_elf_rejects_non_elf(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(KseriesError, match="not an ELF file"):
        ul.read_elf(script)


def test_parse_depends_takes_first_alternative_and_skips_virtuals() -> None:
    text = ("kexec-tools:arm64\n"
            "  Depends: libc6:arm64\n"
            " |Depends: <debconf:arm64>\n"
            "    debconf\n"
            "  Depends: <debconf-2.0:arm64>\n"
            "    cdebconf:arm64\n"
            "libc6:arm64\n"
            "  Depends: libgcc-s1:arm64\n"
            "debconf\n"
            "  Depends: perl-base\n")
    graph = ul.parse_depends(text, ARCH, native=False)
    assert graph == {"kexec-tools": (("libc6",), ()), "libc6": (("libgcc-s1",),)}


def test_absolute_symlinks_into_the_tree_become_relative(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "aarch64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "ld-linux-aarch64.so.1").write_bytes(b"loader")
    (tmp_path / "lib" / "ld-linux-aarch64.so.1").symlink_to(
        "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
    (tmp_path / "masked.service").symlink_to("/dev/null")
    ul.relativize_symlinks(tmp_path)
    assert os.readlink(tmp_path / "lib" / "ld-linux-aarch64.so.1") == \
        "aarch64-linux-gnu/ld-linux-aarch64.so.1"
    assert os.readlink(tmp_path / "masked.service") == "/dev/null"
