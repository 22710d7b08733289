"""The environment every kernel compile of kseries runs with: a shared ccache (remote storage)
and distcc, asked for in the user's environment.

    KSERIES_CCACHE_REMOTE=redis://10.0.0.5:6379   ->  CCACHE_REMOTE_STORAGE, CCACHE_RESHARE
    KSERIES_DISTCC_HOSTS="10.0.0.6/8 10.0.0.7/8"  ->  CCACHE_PREFIX=distcc, DISTCC_HOSTS

The CLI reads them once (Context.compile_env); the build stage's make, kunit.py build and the
vmtest guest kernel build get the result on top of their own environment. Nothing set: an
empty environment, so nothing changes. Every compile already goes through ccache
(CC="ccache <cc>"), so both are ccache settings: a local miss asks the remote storage before
compiling, and with CCACHE_PREFIX ccache runs what it must compile as `distcc <cc> ...`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping

from kseries.core.errors import InfraError, KseriesError
from kseries.core.proc import run

REMOTE_VAR = "KSERIES_CCACHE_REMOTE"
DISTCC_VAR = "KSERIES_DISTCC_HOSTS"
# ccache 4.7's remote_storage backends; each is a build feature (`ccache --version` lists
# "redis-storage" and so on), so a ccache built without one would ignore its URLs silently.
REMOTE_SCHEMES = ("redis", "redis+unix", "file", "http")
URL_FORMS = "redis://HOST:PORT, redis+unix:/PATH, file:/DIR or http://HOST/PATH"

Which = Callable[[str], str | None]
Features = Callable[[], frozenset[str]]


def ccache_features() -> frozenset[str]:
    """The 'Features:' of `ccache --version` (4.4+: file-storage, redis-storage, ...); none
    for an older ccache or none at all."""
    if shutil.which("ccache") is None:
        return frozenset()
    proc = run(["ccache", "--version"], check=False, timeout_s=60)
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "Features":
            return frozenset(rest.split())
    return frozenset()


def remote_schemes(value: str) -> list[str]:
    """The scheme of each URL in VALUE (remote_storage: URLs separated by spaces, each maybe
    followed by |attribute=value), or a one-line error for one ccache cannot use."""
    schemes = []
    for entry in value.split():
        url = entry.partition("|")[0]
        scheme, colon, rest = url.partition(":")
        if not colon or not rest or scheme not in REMOTE_SCHEMES:
            # The URL itself is left out: it may hold a password (redis://:secret@host).
            shown = f"scheme '{scheme}'" if colon else f"'{url}' (no scheme)"
            raise KseriesError(f"{REMOTE_VAR}: {shown} is not a ccache remote storage URL; "
                               f"use {URL_FORMS} (ccache 4.7's remote_storage)")
        schemes.append(scheme)
    return schemes


def remote_env(value: str, features: Features = ccache_features) -> dict[str, str]:
    """ccache's remote storage at VALUE. CCACHE_RESHARE: a local hit is written to the remote
    too, or a worker whose own cache was warm before the remote existed (kseries' build dirs
    usually are) would share nothing of it; each hit then costs one write."""
    schemes = remote_schemes(value)
    have = features()
    missing = sorted({s for s in schemes if f"{s}-storage" not in have})
    if missing:
        raise InfraError(f"{REMOTE_VAR}: this ccache cannot use {', '.join(missing)} remote "
                         f"storage (`ccache --version` lists no "
                         f"{', '.join(f'{s}-storage' for s in missing)}); install ccache 4.4 "
                         f"or newer built with it (Debian 12: apt-get install ccache)")
    return {"CCACHE_REMOTE_STORAGE": value, "CCACHE_RESHARE": "1"}


def distcc_env(hosts: str, which: Which = shutil.which) -> dict[str, str]:
    """distcc with HOSTS (distcc's host list) under ccache: ccache hashes and caches, and
    runs each compile it has to do through distcc."""
    if which("distcc") is None:
        raise InfraError(f"{DISTCC_VAR} is set but 'distcc' is not installed; install it "
                         f"(apt-get install distcc) or unset {DISTCC_VAR}")
    return {"CCACHE_PREFIX": "distcc", "DISTCC_HOSTS": hosts}


def compile_env(environ: Mapping[str, str], which: Which = shutil.which,
                features: Features = ccache_features) -> dict[str, str]:
    """The variables every kernel compile gets, from the user's ENVIRON (empty when neither
    KSERIES_CCACHE_REMOTE nor KSERIES_DISTCC_HOSTS is set, or both are blank)."""
    env: dict[str, str] = {}
    remote = environ.get(REMOTE_VAR, "").strip()
    if remote:
        env |= remote_env(remote, features)
    hosts = environ.get(DISTCC_VAR, "").strip()
    if hosts:
        env |= distcc_env(hosts, which)
    return env
