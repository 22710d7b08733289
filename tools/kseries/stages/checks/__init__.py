"""The checks stage: what every patch bot runs first (NIPA style), one check per patch per rule."""
