"""constraints.txt pins b4 and everything it pulls in (and the other runtime dependencies):
a lower bound alone lets a new b4 or dnspython arrive unseen on the next fresh machine."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires

from packaging.requirements import Requirement

from tests.conftest import ROOT


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line)
        if match:
            found[normal(match.group(1))] = match.group(2)
    return found


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(name: str) -> set[str]:
    """NAME and every distribution it requires (markers evaluated here), recursively."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = normal(todo.pop())
        if current in seen:
            continue
        seen.add(current)
        try:
            wanted = requires(current) or []
        except PackageNotFoundError:
            continue
        for spec in map(Requirement, wanted):
            if spec.marker is None or spec.marker.evaluate({"extra": ""}):
                todo.append(spec.name)
    return seen


def test_b4_and_every_runtime_dependency_is_pinned() -> None:
    pinned = pins()
    for root in ("kseries", "b4"):
        missing = sorted(closure(root) - set(pinned) - {"kseries"})
        assert not missing, f"constraints.txt lacks {missing} (needed by {root})"


def test_the_installed_versions_are_the_pinned_ones() -> None:
    from importlib.metadata import version
    for name in sorted(closure("kseries") - {"kseries"}):
        assert version(name) == pins()[name], name
