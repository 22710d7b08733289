"""verify as jobs: `kseries plan` (jobs.json), `kseries job` (one of them), `kseries merge`
(their reports back into one)."""
