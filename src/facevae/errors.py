"""The one exception type that the CLI turns into a one-line message."""
from __future__ import annotations

import difflib
from typing import Iterable


class FacevaeError(Exception):
    """A problem with the user's input: the message says what is wrong and what to do."""


class Interrupted(Exception):
    """Training stopped on Ctrl-C; the message says what was saved. The CLI exits 130 with it."""


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """' (did you mean 'Smiling'?)' for the closest of `choices` to a mistyped `name` (case aside), else ''."""
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
