"""make bench: speed figures printed as ratios (never a timed test; this machine is noisy).

Run from the repository root as `python -m tools.bench [SECTION...]`. One module per
section measures one stage through the product's own functions and returns what it
measured; benchmark code lives here, not in the product.
"""
