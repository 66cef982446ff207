"""Posterior diagnostics (arviz-plots): pair, rank and prior-versus-posterior plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.dims import SAMPLE_DIMS
from bayescale.core.errors import ConfigError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

from bayescale.plots.style import MAX_PAIR_PARAMS, MAX_PANEL_PARAMS, style

__all__ = [
    "diagnostic_draws",
    "diagnostic_params",
    "plot_pair",
    "plot_prior_posterior",
    "plot_rank",
]


def diagnostic_params(fit: Fit, *, limit: int | None = None) -> list[str]:
    """Return the scalar quantities the diagnostic plots show, the most important first.

    In order:

    1. the law's paper parameters that are one number for the whole fit: all of them in a
       pooled fit, the shared ones (such as Chinchilla's ``E``) in a hierarchical one;
    2. the population locations ``mu_*`` of the parameters that vary by group: for one pooled
       on the log scale its geometric mean ``mu_<param>`` (in the parameter's units) rather
       than ``mu_log_<param>``, the same quantity, and else the location of its latent;
    3. the noise scale ``sigma`` (of the log loss);
    4. the population scales ``tau_*`` (and ``tau_run``, the run-offset scale of curve fits).

    Values per group are never included: one panel per group and parameter does not scale
    (a 20-group Chinchilla fit has 80 of them) and the summary table lists them all. Nor are
    constant quantities or those with non-finite draws, which have no distribution to draw.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    limit : int, optional
        Keep only the first ``limit`` names.

    Returns
    -------
    list of str
        Names of posterior variables with dims ``(chain, draw)``.

    Raises
    ------
    ConfigError
        If ``limit`` is not a whole number >= 1.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a whole number >= 1, got {limit!r}")
    post = fit.posterior
    reported = fit.reported
    locations = [
        n
        for n in reported
        if n.startswith("mu_")
        and not (n.startswith("mu_log_") and f"mu_{n.removeprefix('mu_log_')}" in post)
    ]
    scales = [n for n in reported if n.startswith("tau_")]
    names = [*fit.law.params, *locations, "sigma", *scales]
    names = [n for n in dict.fromkeys(names) if n in post and post[n].dims == SAMPLE_DIMS]
    return _plottable(post, names)[:limit]


def _plottable(post: xr.Dataset, names: Sequence[str]) -> list[str]:
    """Return the names of variables in ``post`` whose draws are finite and not all equal."""
    with np.errstate(over="ignore", invalid="ignore"):
        # The std of draws that overflowed to inf is nan, so those fail the test too.
        return [n for n in dict.fromkeys(names) if n in post and float(post[n].std()) > 0]


def diagnostic_draws(
    fit: Fit, var_names: Sequence[str] | None = None, *, limit: int | None = None
) -> xr.DataTree:
    """Return the posterior (and prior, if drawn) of the law's parameters and the noise.

    Parameters
    ----------
    fit : Fit
        A fitted law.
    var_names : sequence of str, optional
        Quantities to keep (default :func:`diagnostic_params`: the scalar parameters,
        population locations and scales, and ``sigma``).
    limit : int, optional
        With the default quantities, keep the first ``limit`` (see :func:`diagnostic_params`).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats`` and, if the fit has prior draws, ``prior``.
    """
    # xarray, matplotlib and arviz_plots are imported where used: the report
    # imports this module for diagnostic_params, which needs none of them
    import xarray as xr

    post = fit.posterior
    if var_names is None:
        names = diagnostic_params(fit, limit=limit)
    else:
        names = _plottable(post, list(var_names))
    groups = {"posterior": post[names]}
    if "sample_stats" in fit.tree.children:
        groups["sample_stats"] = fit.tree["sample_stats"].to_dataset()
    if "prior" in fit.tree.children:
        prior = fit.tree["prior"].to_dataset()
        groups["prior"] = prior[[n for n in names if n in prior]]
    return xr.DataTree.from_dict(groups)


def _diagnostic_tree(
    fit: Fit, var_names: Sequence[str] | None, limit: int, what: str
) -> xr.DataTree:
    """Draws of at most ``limit`` quantities for one diagnostic plot (``what`` names it)."""
    if var_names is not None and len(var_names) > limit:
        raise ConfigError(
            f"a {what} shows at most {limit} quantities, got {len(var_names)} var_names"
        )
    tree = diagnostic_draws(fit, var_names, limit=limit)
    if not tree["posterior"].data_vars:
        raise ConfigError(f"no quantity of this fit has finite, varying draws for a {what}")
    return tree


def _arviz_figure(plot: Any, tree: xr.DataTree, **kwargs: Any) -> Figure:
    with style(), np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        pc = plot(tree, backend="matplotlib", **kwargs)
    fig = pc.viz["figure"].item()
    # arviz-plots makes its figures with pyplot: release pyplot's reference so figures do not
    # pile up in long sessions (the Figure itself stays usable).
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


def plot_pair(fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any) -> Figure:
    """Pair plot of the law's exponents and scales (:func:`arviz_plots.plot_pair`).

    Parameters
    ----------
    fit : Fit
        A fitted law.
    var_names : sequence of str, optional
        At most :data:`MAX_PAIR_PARAMS` quantities (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_pair`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    tree = _diagnostic_tree(fit, var_names, MAX_PAIR_PARAMS, "pair plot")
    return _arviz_figure(_azp("plot_pair"), tree, **kwargs)


def plot_rank(fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any) -> Figure:
    """Rank plots of each chain (:func:`arviz_plots.plot_rank`): flat when chains agree.

    Parameters
    ----------
    fit : Fit
        A fitted law with at least two chains.
    var_names : sequence of str, optional
        At most :data:`MAX_PANEL_PARAMS` quantities, one panel each (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_rank`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ConfigError
        If the fit has one chain: ranks compare chains with each other.
    """
    if fit.posterior.sizes["chain"] < 2:
        raise ConfigError("rank plots compare chains; this fit has one (refit with chains=2)")
    tree = _diagnostic_tree(fit, var_names, MAX_PANEL_PARAMS, "rank plot")
    return _arviz_figure(_azp("plot_rank"), tree, **kwargs)


def plot_prior_posterior(
    fit: Fit, *, var_names: Sequence[str] | None = None, **kwargs: Any
) -> Figure:
    """Prior against posterior densities (:func:`arviz_plots.plot_prior_posterior`).

    Parameters
    ----------
    fit : Fit
        A fitted law with prior draws.
    var_names : sequence of str, optional
        At most :data:`MAX_PANEL_PARAMS` quantities, one panel each (default the first of
        :func:`diagnostic_params`).
    **kwargs
        Passed to :func:`arviz_plots.plot_prior_posterior`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ConfigError
        If the fit has no prior draws (fit with ``prior_draws=``).
    """
    no_prior = ConfigError("this fit has no prior draws; refit with prior_draws=500")
    if "prior" not in fit.tree.children:
        raise no_prior
    tree = _diagnostic_tree(fit, var_names, MAX_PANEL_PARAMS, "prior-posterior plot")
    if not tree["prior"].data_vars:
        raise no_prior
    return _arviz_figure(_azp("plot_prior_posterior"), tree, **kwargs)


def _azp(name: str) -> Any:
    import arviz_plots

    return getattr(arviz_plots, name)
