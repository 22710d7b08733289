"""kseries.stages.kunit."""
