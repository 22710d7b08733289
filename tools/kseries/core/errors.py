"""The exception types the runner and the CLI turn into one-line errors."""


class KseriesError(Exception):
    """A user-facing error: one line naming the problem and what to do."""


class InfraError(KseriesError):
    """The machine, not the series, is at fault: a missing tool, a hung tool, no disk.

    A stage that raises it ends with status 'error' (exit 3), not 'fail': the series was
    not shown to be wrong.
    """
