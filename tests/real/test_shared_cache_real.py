"""A shared compile cache and distcc on the real 6.12 tree, through the build stage's own make
(build_objects with the compile environment KSERIES_CCACHE_REMOTE / KSERIES_DISTCC_HOSTS
give): a redis-server and a distccd of our own, on free ports of 127.0.0.1 only, stopped by
the test.

A few objects of the series (memory hotplug, virtio-mem, resources) are compiled in an O=
dir of this module's own (x86_64_defconfig + the build bot's common and virtio-mem fragments,
`make prepare` with a ccache dir of its own: 31 s of the 50 s here): first with an empty ccache dir
A and the redis remote, then, deleted, with another empty dir B, whose compiles must all be
remote hits; and with an empty ccache dir through distccd, whose log must show them compiled.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from kseries.core.proc import run
from kseries.kernel.arches import get_arch, make_command
from kseries.kernel.compile_env import DISTCC_VAR, REMOTE_VAR, compile_env
from kseries.kernel.kconfig import FRAGMENTS_DIR, merge_config, read_config_values
from kseries.kernel.tree import Tree
from kseries.stages.build.coverage import ArchSetup
from kseries.stages.build.make import StepResult, build_objects, run_make, with_compile_env
from kseries.stages.build.metadata import parse_ccache_stats
from kseries.stages.build.options import MAKE_FLAGS, WARN_FLAGS

pytestmark = pytest.mark.realtree

ARCH = get_arch("x86_64")
FRAGMENTS = (FRAGMENTS_DIR / "common.config", FRAGMENTS_DIR / "virtio-mem.config")
OBJECTS = ("mm/memory_hotplug.o", "drivers/virtio/virtio_mem.o", "kernel/resource.o")
WANTED = {"MEMORY_HOTPLUG": "y", "VIRTIO_MEM": "y"}
SERVER_START_S = 15.0


@dataclass(frozen=True)
class Prepared:
    """The module's O= dir, configured and prepared; its own ccache dirs go under ROOT."""

    tree: Tree
    build_dir: Path
    root: Path


def needs(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        pytest.fail(f"'{program}' is not installed; run 'make setup' (tools/install-deps.sh "
                    f"installs it)")
    return found


@pytest.fixture(scope="module")
def prepared(real_tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """defconfig + fragments + olddefconfig as the build stage merges them, then `make
    prepare` with the flags the objects get (so their make redoes none of it), all with a
    ccache dir of its own: the counters of A and B are the objects' alone."""
    root = tmp_path_factory.mktemp("shared-cache")
    build_dir = root / "build"
    with pytest.MonkeyPatch.context() as patch:
        # Kconfig's and prepare's compiler calls go through ccache too (CC="ccache gcc").
        patch.setenv("CCACHE_DIR", str(root / "ccache-prepare"))
        config = merge_config(real_tree.path, build_dir, ARCH, FRAGMENTS)
        code, output = run_make(make_command(ARCH, real_tree.path, build_dir, "prepare",
                                             extra=(*WARN_FLAGS, *MAKE_FLAGS)),
                                root / "prepare.log")
    assert code == 0, output[-2000:]
    values = read_config_values(config.read_text())
    assert {k: values.get(k) for k in WANTED} == WANTED
    return Prepared(real_tree, build_dir, root)


def compile_objects(prepared: Prepared, step: str, env: Mapping[str, str]) -> StepResult:
    """The objects deleted and built again by build_objects, as the build stage builds them,
    with ENV as the compile environment."""
    out_dir = prepared.root / "out" / step
    setup = ArchSetup(ARCH, prepared.build_dir, out_dir, prepared.build_dir / ".config", (),
                      FRAGMENTS, "gcc", 0.0, {})
    result = build_objects(with_compile_env(setup, env), prepared.tree.path,
                           prepared.tree.base_commit, step, OBJECTS)
    assert result.ok, Path(result.log).read_text()[-3000:]
    return result


def results_by_object(log: Path) -> dict[str, set[str]]:
    """What ccache's log (CCACHE_LOGFILE) says of each object file: its 'Result:' lines, per
    process. kbuild's Makefiles also call the compiler for their cc-option probes (-x c
    /dev/null, cached as well): the counters of --print-stats add those up with the objects,
    the log tells them apart."""
    current: dict[str, str] = {}
    results: dict[str, set[str]] = {}
    for line in log.read_text(errors="replace").splitlines():
        stamp, _, text = line.partition("] ")
        pid = stamp.split()[-1] if stamp.split() else ""  # "[time pid]", the pid padded
        if text.startswith("Object file: "):
            current[pid] = text.removeprefix("Object file: ")
            results.setdefault(current[pid], set())
        elif text.startswith("Result: ") and pid in current:
            results[current[pid]].add(text.removeprefix("Result: "))
    return results


def ccache_stats(ccache_dir: Path) -> dict[str, int]:
    proc = run(["ccache", "--print-stats"], env={"CCACHE_DIR": str(ccache_dir)})
    return parse_ccache_stats(proc.stdout)


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on now (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def server(cmd: list[str], port: int, log: Path,
           env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """CMD running (in a session of its own) until it listens on PORT; stopped with its
    children, whatever the test did."""
    with log.open("wb") as stream:
        proc = subprocess.Popen(cmd, stdout=stream, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{cmd[0]} did not listen on 127.0.0.1:{port}: "
                            f"{log.read_text(errors='replace')[-1000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (distccd's children are in it), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    cmd = [needs("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
           "--protected-mode", "yes", "--save", "", "--appendonly", "no",
           "--dir", str(data), "--daemonize", "no"]
    with server(cmd, port, tmp_path / "redis.log"):
        yield f"redis://127.0.0.1:{port}"


@contextmanager
def readable_cmdlist(compilers: list[str]) -> Iterator[Path]:
    """distccd's list of the compilers it may run (DISTCC_CMDLIST), instead of the symlinks
    in /usr/lib/distcc that Debian's update-distcc-symlinks keeps: no system file is
    touched. Run as root, distccd drops to user distccd before it reads the list, and
    pytest's tmp dirs are private, so the list lives in a world-readable dir of its own."""
    with tempfile.TemporaryDirectory(prefix="kseries-distcc-") as directory:
        os.chmod(directory, 0o755)
        path = Path(directory) / "cmdlist"
        path.write_text("".join(f"{c}\n" for c in compilers))
        path.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        yield path


@pytest.fixture
def distcc_hosts(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """distccd on 127.0.0.1 (its log: --log-stderr into a file we opened, which the user it
    drops to could not open itself in our private tmp dir), allowed to run the compiler as
    ccache names it (the full path)."""
    port = free_port()
    log = tmp_path / "distccd.log"
    compiler = needs(ARCH.cc)
    compilers = sorted({compiler, os.path.realpath(compiler)})
    with readable_cmdlist(compilers) as cmdlist:
        cmd = [needs("distccd"), "--daemon", "--no-detach", "--listen", "127.0.0.1",
               "--allow", "127.0.0.1", "--port", str(port), "--jobs", "2",
               "--log-stderr", "--log-level=info"]
        with server(cmd, port, log, {"DISTCC_CMDLIST": str(cmdlist)}):
            yield f"127.0.0.1:{port}", log


def test_an_empty_cache_dir_gets_every_object_from_the_remote(prepared: Prepared,
                                                              redis_url: str) -> None:
    shared = compile_env({REMOTE_VAR: redis_url})
    runs = {}
    for name in ("a", "b"):
        ccache_dir, log = prepared.root / f"ccache-{name}", prepared.root / f"ccache-{name}.log"
        compile_objects(prepared, f"cache-{name}",
                        {**shared, "CCACHE_DIR": str(ccache_dir), "CCACHE_LOGFILE": str(log)})
        runs[name] = (ccache_stats(ccache_dir), results_by_object(log))
    (first, first_objects), (second, second_objects) = runs["a"], runs["b"]
    for obj in OBJECTS:  # A compiled each object and wrote it to the remote
        assert {"cache_miss", "remote_storage_write"} <= first_objects[obj], (obj, first_objects)
    remote_hits = [o for o in OBJECTS if "remote_storage_hit" in second_objects[o]]
    assert remote_hits == list(OBJECTS), second_objects
    assert not any("local_storage_hit" in second_objects[o] for o in OBJECTS), second_objects
    # Everything B compiled, probes too, came from the remote: nothing local, nothing missed.
    assert second.get("remote_storage_hit") == first.get("cache_miss"), (first, second)
    assert second.get("local_storage_hit", 0) == 0 and second.get("cache_miss", 0) == 0, \
        second


def test_distcc_compiles_the_objects_on_the_distccd(prepared: Prepared,
                                                    distcc_hosts: tuple[str, Path]) -> None:
    hosts, log = distcc_hosts
    client = prepared.root / "distcc-client"  # distcc's own lock and state files
    client.mkdir()
    env = {**compile_env({DISTCC_VAR: hosts}), "CCACHE_DIR": str(prepared.root / "ccache-d"),
           "DISTCC_FALLBACK": "0", "DISTCC_DIR": str(client)}
    compile_objects(prepared, "distcc", env)
    served = [line for line in log.read_text(errors="replace").splitlines()
              if "COMPILE_OK" in line]
    for obj in OBJECTS:
        source = obj.removesuffix(".o") + ".c"
        assert any(line.endswith(source) for line in served), (source, served)
