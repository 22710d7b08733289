"""kseries.kernel."""
