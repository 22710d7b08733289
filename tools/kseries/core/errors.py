"""The one exception type the CLI turns into a one-line error."""


class KseriesError(Exception):
    """A user-facing error: one line naming the problem and what to do."""
