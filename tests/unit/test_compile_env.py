"""The compile environment (kernel/compile_env.py): KSERIES_CCACHE_REMOTE and
KSERIES_DISTCC_HOSTS made into ccache's and distcc's variables, their one-line errors, and
that the build stage's make, kunit.py build and the vmtest guest kernel build all get it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from kseries import cli
from kseries.core.context import Context, Options, make_context
from kseries.core.errors import InfraError, KseriesError
from kseries.core.report import EXIT_FAIL
from kseries.kernel.arches import get_arch
from kseries.kernel.compile_env import (
    DISTCC_VAR,
    REMOTE_VAR,
    ccache_features,
    compile_env,
    remote_schemes,
)
from kseries.kernel.qemu import machine
from kseries.series.apply import ApplyResult
from kseries.stages.build import run as build_run
from kseries.stages.build.coverage import ArchSetup, Cell
from kseries.stages.build.make import CompileSetup, build_objects, with_compile_env
from kseries.stages.build.metadata import ccache_group
from kseries.stages.build.options import BuildOptions
from kseries.stages.build.plan import Plan, Target
from kseries.stages.kunit import stage as kunit_stage
from kseries.stages.kunit.overlay import load_overlay
from kseries.stages.kunit.suite import Suite
from kseries.stages.vmtest import kernel as vm_kernel
from kseries.stages.vmtest import stage as vm_stage
from kseries.stages.vmtest.guest import VmOptions
from kseries.stages.vmtest.kernel import build_kernel

ALL_STORAGE = frozenset({"file-storage", "http-storage", "redis-storage",
                         "redis+unix-storage"})
SHARED = {"CCACHE_REMOTE_STORAGE": "redis://10.0.0.5:6379", "CCACHE_RESHARE": "1",
          "CCACHE_PREFIX": "distcc", "DISTCC_HOSTS": "10.0.0.6/8"}


def derive(environ: dict[str, str], distcc: str | None = "/usr/bin/distcc",
           features: frozenset[str] = ALL_STORAGE) -> dict[str, str]:
    return compile_env(environ, which=lambda _name: distcc, features=lambda: features)


def one_line(err: pytest.ExceptionInfo[KseriesError], *needles: str) -> str:
    text = str(err.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, text
    return text


# -- deriving the environment -----------------------------------------------------------------


def test_nothing_set_is_an_empty_environment() -> None:
    assert derive({}) == {}
    assert derive({REMOTE_VAR: "  ", DISTCC_VAR: ""}) == {}
    assert derive({"CCACHE_DIR": "/x", "PATH": "/bin"}) == {}


def test_a_remote_sets_ccaches_remote_storage_and_reshares_local_hits() -> None:
    assert derive({REMOTE_VAR: "redis://10.0.0.5:6379"}) == {
        "CCACHE_REMOTE_STORAGE": "redis://10.0.0.5:6379", "CCACHE_RESHARE": "1"}


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "redis+unix:/run/redis.sock",
                                 "file:/srv/ccache", "file:///srv/ccache",
                                 "http://cache.example/ccache",
                                 "redis://h:1|connect-timeout=50 file:/srv/c|read-only=true"])
def test_every_backend_of_ccache_47_is_taken_as_given(url: str) -> None:
    assert derive({REMOTE_VAR: url})["CCACHE_REMOTE_STORAGE"] == url


def test_several_urls_are_each_checked() -> None:
    assert remote_schemes("redis://a:1|connect-timeout=5 file:/b") == ["redis", "file"]


@pytest.mark.parametrize(("url", "shown"), [("https://cache.example/c", "scheme 'https'"),
                                            ("s3://bucket", "scheme 's3'"),
                                            ("/srv/ccache", "'/srv/ccache' (no scheme)"),
                                            ("redis:", "scheme 'redis'"),
                                            ("file:/ok ftp://x", "scheme 'ftp'")])
def test_a_url_ccache_cannot_use_is_one_line_naming_the_variable_and_the_forms(
        url: str, shown: str) -> None:
    with pytest.raises(KseriesError) as err:
        derive({REMOTE_VAR: url})
    assert not isinstance(err.value, InfraError)  # bad input: exit 1
    one_line(err, REMOTE_VAR, shown, "redis://HOST:PORT", "file:/DIR")


def test_the_error_does_not_repeat_a_password() -> None:
    with pytest.raises(KseriesError) as err:
        derive({REMOTE_VAR: "rediss://:hunter2@cache:6379"})
    assert "hunter2" not in one_line(err, "scheme 'rediss'")


def test_a_ccache_without_the_backend_is_an_infra_error_naming_the_package() -> None:
    with pytest.raises(InfraError) as err:
        derive({REMOTE_VAR: "redis://h:1"}, features=frozenset({"file-storage"}))
    one_line(err, REMOTE_VAR, "redis", "redis-storage", "apt-get install ccache")


@pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed")
def test_this_machines_ccache_features_are_read_from_its_version() -> None:
    version = subprocess.run(["ccache", "--version"], capture_output=True, text=True,
                             check=False).stdout
    listed = [line for line in version.splitlines() if line.startswith("Features:")]
    expected = frozenset(listed[0].split(":", 1)[1].split()) if listed else frozenset()
    assert ccache_features() == expected


def test_distcc_hosts_put_distcc_under_ccache() -> None:
    assert derive({DISTCC_VAR: "10.0.0.6/8 localhost"}) == {
        "CCACHE_PREFIX": "distcc", "DISTCC_HOSTS": "10.0.0.6/8 localhost"}


def test_distcc_hosts_without_distcc_name_the_package() -> None:
    with pytest.raises(InfraError) as err:
        derive({DISTCC_VAR: "10.0.0.6"}, distcc=None)
    one_line(err, DISTCC_VAR, "'distcc' is not installed", "apt-get install distcc")


def test_both_together() -> None:
    assert derive({REMOTE_VAR: "redis://10.0.0.5:6379", DISTCC_VAR: "10.0.0.6/8"}) == SHARED


# -- read once, at the CLI edge ---------------------------------------------------------------


def options(tmp_path: Path) -> Options:
    return Options(series_file=None, cache_dir=tmp_path / "cache", tree=None, revision=None,
                   mbox=None, out=tmp_path / "out")


def test_the_context_holds_what_the_environment_asked_for(tmp_path: Path) -> None:
    assert make_context(options(tmp_path)).compile_env == {}
    ctx = make_context(options(tmp_path), {REMOTE_VAR: "file:/srv/ccache", "HOME": "/root"})
    assert ctx.compile_env == {"CCACHE_REMOTE_STORAGE": "file:/srv/ccache",
                               "CCACHE_RESHARE": "1"}


def test_the_cli_reads_the_users_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(REMOTE_VAR, "s3://bucket/ccache")
    code = cli.main(["tree", "--show", "--cache-dir", str(tmp_path / "cache")])
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("kseries: error:")]
    assert code == EXIT_FAIL
    assert len(errors) == 1 and REMOTE_VAR in errors[0] and "scheme 's3'" in errors[0]


# -- the build stage --------------------------------------------------------------------------


def arch_setup(tmp_path: Path) -> ArchSetup:
    build_dir, out_dir = tmp_path / "build", tmp_path / "out" / "build" / "x86_64"
    build_dir.mkdir(parents=True)
    return ArchSetup(get_arch("x86_64"), build_dir, out_dir, build_dir / ".config", (), (),
                     "gcc (Debian 12.2.0-14) 12.2.0", 0.5,
                     {"mm/a.c": Cell("buildable", "CONFIG_MEMORY_HOTPLUG")}, "stamp")


def test_a_compile_setup_is_its_arch_setup_plus_the_environment(tmp_path: Path) -> None:
    setup = arch_setup(tmp_path)
    compiled = with_compile_env(setup, SHARED)
    assert isinstance(compiled, CompileSetup) and compiled.compile_env == SHARED
    assert all(getattr(compiled, f.name) == getattr(setup, f.name) for f in fields(ArchSetup))
    assert compiled.objects == setup.objects == ("mm/a.o",)
    assert replace(compiled, stamp="other").compile_env == SHARED


# A "kernel tree" whose make writes the variables a compile would see into the object.
RECORDING_MAKEFILE = """\
%.o:
\tmkdir -p $(dir $(O)/$@)
\tprintf '%s|%s|%s|%s\\n' "$$CCACHE_REMOTE_STORAGE" "$$CCACHE_RESHARE" "$$CCACHE_PREFIX" \
"$$DISTCC_HOSTS" > $(O)/$@
"""


def recording_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text(RECORDING_MAKEFILE)
    return tree


def test_build_objects_runs_make_with_the_setups_environment(tmp_path: Path) -> None:
    tree, setup = recording_tree(tmp_path), arch_setup(tmp_path)
    result = build_objects(with_compile_env(setup, SHARED), tree, "c0ffee", "head", ["mm/a.o"])
    assert result.ok, Path(result.log).read_text()
    assert (setup.build_dir / "mm/a.o").read_text() == \
        "redis://10.0.0.5:6379|1|distcc|10.0.0.6/8\n"


def test_build_objects_of_a_plain_setup_adds_nothing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHARED:
        monkeypatch.delenv(name, raising=False)
    tree, setup = recording_tree(tmp_path), arch_setup(tmp_path)
    assert build_objects(setup, tree, "c0ffee", "head", ["mm/a.o"]).ok
    assert (setup.build_dir / "mm/a.o").read_text() == "|||\n"


def test_the_build_run_gives_every_arch_the_contexts_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = replace(make_context(options(tmp_path)), compile_env=SHARED)
    applied = ApplyResult(tmp_path / "worktree", "b", "base", "head", (), False, (), "git am")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(build_run, "ensure_worktree", lambda *_a: None)
    monkeypatch.setattr(build_run, "checkout", lambda *_a: None)
    monkeypatch.setattr(build_run, "make_plan", lambda *_a: Plan(
        (Target("mm/a.c", "mm/a.o", "touched"),), (), {}, (), ()))
    monkeypatch.setattr(build_run, "configure", lambda *_a: arch_setup(tmp_path))
    monkeypatch.setattr(build_run, "execute", lambda _w, _a, _p, runs, _o: seen.update(
        envs=[r.setup.compile_env for r in runs]))
    monkeypatch.setattr(build_run, "summarise", lambda *_a: "stage")
    build_run.run_build(ctx, None, applied, BuildOptions((get_arch("x86_64"),)))  # type: ignore[arg-type]
    assert seen["envs"] == [SHARED]


def test_build_metadata_counts_remote_hits_and_misses() -> None:
    before = {"direct_cache_hit": 10, "cache_miss": 4, "remote_storage_hit": 1,
              "remote_storage_miss": 2}
    after = {"direct_cache_hit": 13, "cache_miss": 5, "remote_storage_hit": 3,
             "remote_storage_miss": 3}
    assert ccache_group(before, after) == {"cache_hits": 3, "cache_misses": 1,
                                           "remote_hits": 2, "remote_misses": 1,
                                           "scope": "this build stage, every arch"}
    assert "remote_hits" not in ccache_group(None, {"direct_cache_hit": 1})  # ccache < 4.4


# -- kunit.py build ---------------------------------------------------------------------------


def test_kunit_build_env_adds_the_compile_environment(tmp_path: Path) -> None:
    assert kunit_stage.build_env(tmp_path, {}) == {"CCACHE_BASEDIR": str(tmp_path)}
    assert kunit_stage.build_env(tmp_path, SHARED) == {**SHARED,
                                                       "CCACHE_BASEDIR": str(tmp_path)}


def test_kunit_py_build_runs_with_the_contexts_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx: Context = replace(make_context(options(tmp_path)), compile_env=SHARED)
    runs: list[tuple[list[str], dict[str, str] | None]] = []

    def run_logged(cmd: list[str], _cwd: Path, _log: Path, _timeout: int,
                   env: dict[str, str] | None = None, _expected: float | None = None
                   ) -> kunit_stage.Ran:
        runs.append((cmd, env))
        return kunit_stage.Ran(2, "ERROR: no compiler here\n")
    monkeypatch.setattr(kunit_stage, "check_tools", lambda _spec: None)
    monkeypatch.setattr(kunit_stage, "run_logged", run_logged)
    suite = Suite(load_overlay())
    result = kunit_stage.run_arch_as(ctx, tmp_path, suite, "x86_64", "series", "series")
    assert result.outcome in ("build-failed", "config-failed")
    [(cmd, env)] = runs
    assert "build" in cmd and env == {**SHARED, "CCACHE_BASEDIR": str(ctx.cache)}


# -- the vmtest guest kernel ------------------------------------------------------------------


def test_the_guest_kernel_make_runs_with_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def timed_run(_cache: Path, _key: str, cmd: list[str], **opts: Any
                  ) -> subprocess.CompletedProcess[str]:
        seen.update(cmd=cmd, env=opts.get("env"))
        return subprocess.CompletedProcess(cmd, 2, "error: stop here\n", "")
    monkeypatch.setattr(vm_kernel, "cached_kernel", lambda *_a: None)
    monkeypatch.setattr(vm_kernel, "head_commit", lambda _w: "c0ffee")
    monkeypatch.setattr(vm_kernel, "validate_config", lambda *_a: [])
    monkeypatch.setattr(vm_kernel, "timed_run", timed_run)
    with pytest.raises(KseriesError, match="does not build"):
        build_kernel(tmp_path, tmp_path, machine("x86_64"), "series", "c0ffee",
                     tmp_path / "build.log", SHARED)
    assert seen["cmd"][0] == "make" and seen["env"] == SHARED


def test_vmtest_hands_the_environment_to_the_guest_kernel_builds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class Built(Exception):
        pass

    def build_pair(*args: Any) -> Any:
        seen.append(args[-1])
        raise Built
    monkeypatch.setattr(vm_stage, "build_pair", build_pair)
    applied = ApplyResult(tmp_path, "b", "base", "head", (), False, (), "git am")
    with pytest.raises(Built):
        vm_stage.run_vmtest(tmp_path, applied, VmOptions(base=False), tmp_path / "out", SHARED)
    assert seen == [SHARED]
