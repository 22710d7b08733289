"""kseries.stages.vmtest."""
