"""The one exception type that the CLI turns into a one-line message."""


class FacevaeError(Exception):
    """A problem with the user's input: the message says what is wrong and what to do."""


class Interrupted(Exception):
    """Training stopped on Ctrl-C; the message says what was saved. The CLI exits 130 with it."""
