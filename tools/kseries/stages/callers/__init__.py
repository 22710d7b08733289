"""kseries.stages.callers."""
