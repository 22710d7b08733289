"""kseries.stages.build."""
