"""Every stage of the pipeline, in the order verify runs them."""

from __future__ import annotations

from typing import Any

from kseries.core.pipeline import StageDef
from kseries.stages.build.stage import STAGE as BUILD
from kseries.stages.callers.stage import STAGE as CALLERS
from kseries.stages.checks.stage import STAGE as CHECKS
from kseries.stages.kunit.stage import STAGE as KUNIT
from kseries.stages.revisions import REVISIONS
from kseries.stages.source import APPLY, TREE
from kseries.stages.vmtest.stage import STAGE as VMTEST

STAGES: tuple[StageDef[Any], ...] = (TREE, APPLY, CHECKS, BUILD, CALLERS, KUNIT, VMTEST, REVISIONS)
BY_NAME: dict[str, StageDef[Any]] = {s.name: s for s in STAGES}
# Stages verify runs that have no subcommand of their own: tree and apply come with every
# stage (its needs), revisions only runs inside verify.
NO_SUBCOMMAND: tuple[str, ...] = ("tree", "apply", "revisions")
