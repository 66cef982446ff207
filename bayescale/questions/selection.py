"""Model comparison by leave-one-out cross-validation (PSIS-LOO, via ArviZ).

Use it to ask the data which structure they support: shared exponents with transfer offsets
versus exponents that vary by eval set, one law versus another on the same runs, partial
pooling versus none. Every fit compared must be fitted to the same runs (the same observed
log losses), otherwise the expected log predictive densities are not comparable.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.errors import ConfigError, SamplingWarning

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from bayescale.fitting.result import Fit

__all__ = ["compare_fits", "loo", "with_log_likelihood"]


def with_log_likelihood(fit: Fit) -> xr.DataTree:
    """Return the fit's DataTree with a ``log_likelihood`` group (variable ``log_loss``)."""
    # xarray and arviz are imported where used (arviz ~1.6 s): the report imports
    # this module and compares fits only when given several
    import xarray as xr

    tree = fit.tree.copy()
    tree["log_likelihood"] = xr.DataTree(fit.log_likelihood().to_dataset())
    return tree


def loo(fit: Fit, **kwargs: Any) -> Any:
    """PSIS-LOO estimate of the expected log pointwise predictive density of a fit.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    **kwargs
        Passed to :func:`arviz.loo` (e.g. ``pointwise=True``).

    Returns
    -------
    ELPDData
        ArviZ's result: ``elpd``, ``se``, ``p`` and the Pareto k diagnostics.
    """
    import arviz as az

    with _pareto_warnings("this fit"):
        return az.loo(with_log_likelihood(fit), var_name="log_loss", **kwargs)


def compare_fits(fits: Mapping[str, Fit], **kwargs: Any) -> pd.DataFrame:
    """Rank fits of the same runs by PSIS-LOO (best first), as :func:`arviz.compare` does.

    Parameters
    ----------
    fits : mapping of str to Fit
        Named fits of the same runs table (e.g. ``{"offsets": f1, "varying": f2}``).
    **kwargs
        Passed to :func:`arviz.compare`.

    Returns
    -------
    pandas.DataFrame
        One row per fit: ``rank``, ``elpd``, ``p``, ``elpd_diff``, ``weight``, ``se``,
        ``dse``, ``warning``.

    Raises
    ------
    ConfigError
        With fewer than two fits, or fits of different runs.
    """
    import arviz as az

    if len(fits) < 2:
        raise ConfigError("compare_fits needs at least two fits")
    # A DataTree path may name a group or a variable; this one is a variable.
    observed = [
        cast("xr.DataArray", f.tree["observed_data"]["log_loss"]).values for f in fits.values()
    ]
    if any(o.shape != observed[0].shape or not np.allclose(o, observed[0]) for o in observed):
        raise ConfigError(
            "fits compared by LOO must be fitted to the same runs; these differ in their "
            "observed losses"
        )
    trees = {name: with_log_likelihood(f) for name, f in fits.items()}
    kwargs.setdefault("round_to", "none")
    with _pareto_warnings(", ".join(fits)):
        return az.compare(trees, var_name="log_loss", **kwargs)


@contextmanager
def _pareto_warnings(what: str) -> Iterator[None]:
    """Re-issue ArviZ's Pareto-k warnings as one :class:`SamplingWarning` naming the fits.

    High Pareto k means some runs are so influential that importance sampling cannot stand in
    for refitting without them; the ranking is then less certain than ``se`` suggests (the
    ``warning`` column of :func:`compare_fits` marks such fits).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if "Pareto" in str(w.message):
            warnings.warn(
                f"LOO for {what}: some runs have Pareto k > 0.7 (highly influential); treat "
                "the ELPD difference as approximate",
                SamplingWarning,
                stacklevel=3,
            )
            break
    for w in caught:
        if "Pareto" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
