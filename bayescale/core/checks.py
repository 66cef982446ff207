"""Argument checks shared by the library and the command line: one home, one message each."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayescale.core.errors import ConfigError

__all__ = ["check_int", "check_prob", "check_probs"]


def check_prob(prob: float, name: str = "prob") -> float:
    """Return ``prob`` as a float if ``0 < prob < 1``.

    Parameters
    ----------
    prob : float
        A probability, e.g. the mass of an HDI.
    name : str, default "prob"
        The argument's name, for the message.

    Raises
    ------
    ConfigError
        If ``prob`` is not strictly between 0 and 1.
    """
    if not 0 < prob < 1:
        raise ConfigError(f"{name} must be between 0 and 1 (exclusive), got {prob}")
    return float(prob)


def check_probs(probs: Sequence[float]) -> tuple[float, ...]:
    """Return band probabilities widest first (so narrow bands draw on top), each checked.

    Raises
    ------
    ConfigError
        If there are none, or one is not strictly between 0 and 1.
    """
    out = tuple(float(p) for p in probs)
    if not out or not all(0 < p < 1 for p in out):
        raise ConfigError(f"band probabilities must be between 0 and 1, got {list(out)}")
    return tuple(sorted(out, reverse=True))


def check_int(name: str, value: object, low: int) -> int:
    """Return ``value`` if it is a whole number ``>= low``.

    Raises
    ------
    ConfigError
        Naming ``name``, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
