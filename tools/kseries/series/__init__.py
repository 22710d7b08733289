"""kseries.series."""
