"""kseries.stages."""
