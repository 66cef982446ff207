"""Exception types: one per kind of problem a user can cause.

All derive from :class:`BayescaleError`, which the CLI turns into one plain message and exit
code 2. They also derive from :class:`ValueError` so generic callers can catch them.
"""

from __future__ import annotations

import difflib

__all__ = [
    "BayescaleError",
    "ConfigError",
    "FitFileError",
    "RunsTableError",
    "SamplingWarning",
    "UnknownNameError",
]


class BayescaleError(ValueError):
    """Base class of every error caused by user input."""


class RunsTableError(BayescaleError):
    """The runs table is malformed: missing or non-numeric columns, bad values, duplicates."""


class UnknownNameError(BayescaleError, KeyError):
    """A law, dataset, parameter, sampler or group name that does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ConfigError(BayescaleError):
    """Invalid priors, pooling configuration or sampler settings."""


class FitFileError(BayescaleError):
    """A file that is not a bayescale fit, is corrupt, or does not match what is asked of it."""


class SamplingWarning(UserWarning):
    """The sampler reported trouble: divergences, high R-hat or low effective sample size."""


def did_you_mean(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return a sentence listing valid choices, with the closest match first when there is one."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Valid choices: {', '.join(sorted(valid))}.{hint}"
