"""Default prior scales shared by the laws, each documented where it is chosen.

The priors are weakly informative and scaled to the runs table through a
:class:`~bayescale.laws.base.DataSummary` (centre and range of the log loss); the exponent
priors come from published ladders (Kaplan 2020, Hoffmann 2022, Muennighoff 2023).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from bayescale.core.priors import Prior
from bayescale.laws.base import Array, DataSummary


def log_l0_prior(s: DataSummary) -> Prior:
    """Prior of the log loss at the centre of the data (latent ``log_L0``)."""
    # Loss at the data's centre: the data pin it down; one unit of log loss (a factor e) is wide.
    return Prior("Normal", mu=s.mean_log_loss, sigma=0.5)


def log_e_prior(s: DataSummary) -> Prior:
    """Prior of the log irreducible loss (latent ``log_E``)."""
    # Irreducible loss: below the smallest observed loss. Published ladders put E at 0.5-0.9 of
    # the smallest loss (Chinchilla: 1.69 vs ~2.0), so centre at 0.6x with a factor-1.6 sd.
    return Prior("Normal", mu=s.min_log_loss + np.log(0.6), sigma=0.5)


def reducible_at_centre(s: DataSummary, share: float = 1.0) -> Prior:
    """Prior of the log of a reducible term at the centre, ``share`` of the reducible loss."""
    # Reducible loss at the centre: what remains after the E prior's centre, split between terms.
    mean_loss = float(np.exp(s.mean_log_loss))
    reducible = max(mean_loss - 0.6 * float(np.exp(s.min_log_loss)), 0.05 * mean_loss)
    return Prior("Normal", mu=float(np.log(share * reducible)), sigma=1.0)


# Exponents of pure power laws (no E) are small: Kaplan's alpha_N, alpha_D, alpha_C are
# 0.05-0.1. A Normal (not LogNormal) keeps power_n/d/c log-linear, so the exact conjugate
# posterior exists and equals what NUTS samples.
PURE_EXPONENT = Prior("Normal", mu=0.1, sigma=0.1)
# Exponents on a reducible term (with E) are larger: Chinchilla 0.28-0.37, Muennighoff 0.35.
# LogNormal(log 0.3, 0.6) puts 94% of its mass in 0.1-0.9.
REDUCIBLE_EXPONENT = Prior("LogNormal", mu=float(np.log(0.3)), sigma=0.6)
# Local slope -dlog L/dlog X at the centre of the data, for laws with an irreducible term:
# published ladders have 0.02-0.3 (Chinchilla's N term at 400M params and 8B tokens: ~0.07).
# Normal(log 0.1, 1) on its log puts 94% of the mass in 0.015-0.65.
LOG_SLOPE = Prior("Normal", mu=float(np.log(0.1)), sigma=1.0)
# Kaplan's joint L(N, D) exponents: alpha_N 0.076, alpha_D 0.103; 94% mass in 0.024-0.42.
KAPLAN_EXPONENT = Prior("LogNormal", mu=float(np.log(0.1)), sigma=0.75)


def softplus(x: Array, xp: ModuleType) -> Array:
    """``log(1 + e^x)`` with the array namespace ``xp`` (numpy or pytensor.tensor)."""
    return xp.logaddexp(x, 0.0)
