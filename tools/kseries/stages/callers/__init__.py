"""kseries.stages.callers: does every caller of the series' API family pass proper flags?

stage.py (the CLI and verify stage) runs check.py (the orchestration), which scans the tree
(scan.py), learns facts about each file (facts.py), judges flags expressions (flags.py),
applies the call rules and invariants (rules.py, compares.py) and reads what the series'
diffs change (api.py); spatch.py gives Coccinelle's second opinion. Results: model.py;
what to check: spec.py.
"""
