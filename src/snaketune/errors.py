"""The errors snaketune raises for people to read, and the "did you mean" hint they share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A study configuration is invalid; the message names the key and what would be valid."""


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file, column or class."""


def suggest(name: object, options: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for the closest of ``options``, or "" when none is close.

    >>> suggest("serach", ["study", "search"])
    ' (did you mean `search`?)'
    """
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""
