"""What tests/unit and tests/real share about the caller check: the spec of our series, and
mail around a diff, read back through the project's mbox model as the callers stage does."""

from __future__ import annotations

from pathlib import Path

from kseries.series.mbox import read_series
from kseries.stages.callers.spec import CallerCheckSpec

FAMILY = ("add_memory", "__add_memory", "add_memory_resource", "add_memory_driver_managed")
SPEC = CallerCheckSpec(FAMILY, "mhp_t", "MHP_",
                       ("drivers/virtio/virtio_mem.c", "drivers/dax/kmem.c"),
                       "MHP_DRIVER_MANAGED", "mm/memory_hotplug.c")


def mail(diff: str, subject: str = "[PATCH 1/1] mm: test") -> str:
    return (f"From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
            f"From: Test <test@example.org>\nSubject: {subject}\n\nWhy.\n---\n"
            f" a | 1 +\n\n{diff}-- \n2.39.5\n\n")


def patch_diffs(mbox: Path) -> list[str]:
    """The diff of each patch of the series in MBOX, as the callers stage passes them."""
    return [patch.diff for patch in read_series(mbox).patches]


def mail_diffs(scratch: Path, *mails: str) -> list[str]:
    """The diffs of MAILS written as one mbox in SCRATCH."""
    mbox = scratch / "series.mbx"
    mbox.write_text("".join(mails))
    return patch_diffs(mbox)
