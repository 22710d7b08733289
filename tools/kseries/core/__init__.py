"""kseries.core."""
