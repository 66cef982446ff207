r"""Kaplan's derived quantities of learning curves: S_min, E_min, C_min and the efficient frontier.

:func:`minimum_steps` gives :math:`S_{min}`, :math:`E_{min}` and :math:`C_{min}` per row
(Kaplan et al. 2020, eqs. 5.4-5.5); :func:`compute_efficient` the compute-efficient training
point for a compute budget and the frontier exponents, including Kaplan's "convergence is
inefficient" :math:`D \propto C^{0.27}`, as posteriors. The critical batch comes from a
``critical_batch`` or ``kaplan_ns_bcrit`` fit, or from Kaplan's published values
(:data:`~bayescale.laws.learning.KAPLAN_BCRIT`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.laws.learning import KAPLAN_BCRIT, frontier_exponents
from bayescale.runs.curves import RUN_ID

if TYPE_CHECKING:
    import xarray as xr

    from bayescale.fitting.result import Fit

__all__ = ["KAPLAN_BCRIT", "compute_efficient", "minimum_steps"]

# --------------------------------------------------------------------------------------------
# Kaplan's derived quantities: S_min, E_min, C_min, and the compute-efficient frontier
# --------------------------------------------------------------------------------------------


def _bcrit_draws(source: Fit | Mapping[str, float] | None) -> dict[str, xr.DataArray]:
    """B* and alpha_B: posterior draws of a fit that has them, or fixed values."""
    # xarray is imported where used: importing a question costs numpy only
    import xarray as xr

    if source is None:
        source = KAPLAN_BCRIT
    if isinstance(source, Mapping):
        missing = [k for k in KAPLAN_BCRIT if k not in source]
        if missing:
            raise ConfigError(
                f"critical batch needs {' and '.join(KAPLAN_BCRIT)}; missing {missing[0]}"
            )
        return {k: xr.DataArray(float(source[k])) for k in KAPLAN_BCRIT}
    post = source.posterior
    if not all(k in post for k in KAPLAN_BCRIT):
        raise ConfigError(
            f"fit of law {source.law.name!r} has no critical batch (B_star, alpha_B); use a "
            "critical_batch or kaplan_ns_bcrit fit, or give the values as a mapping"
        )
    return {k: post[k] for k in KAPLAN_BCRIT}


def minimum_steps(
    curves: Any,
    *,
    critical: Fit | Mapping[str, float] | None = None,
    run_id: str | None = RUN_ID,
    final_only: bool = False,
    columns: Mapping[str, str] | str | None = None,
) -> xr.Dataset:
    r"""Kaplan's minimum steps, examples and compute to reach each logged loss.

    With :math:`B_{crit}(L) = B_*/L^{1/\alpha_B}` at the observed loss :math:`L` of a row
    trained for :math:`S` steps at batch :math:`B` (tokens) with :math:`N` parameters
    (Kaplan eqs. 5.4, 5.5, C = 6NBS):

    .. math::

        S_{min} = \frac{S}{1 + B_{crit}/B},\quad
        E_{min} = \frac{BS}{1 + B/B_{crit}} = S_{min} B_{crit},\quad
        C_{min} = 6 N E_{min}.

    :math:`S_{min}` is the number of steps the loss would take at a very large batch,
    :math:`E_{min}` the tokens it would take at a very small one.

    Parameters
    ----------
    curves : DataFrame, path or xarray.Dataset
        Rows with ``step``, ``batch``, ``loss`` (and ``N`` for ``C_min``).
    critical : Fit or mapping, optional
        Source of :math:`B_*` (tokens) and :math:`\alpha_B`: a ``critical_batch`` or
        ``kaplan_ns_bcrit`` fit (the results are then posteriors, dims ``chain``, ``draw``),
        or ``{"B_star": ..., "alpha_B": ...}``; default Kaplan's 2e8 and 0.21
        (:data:`KAPLAN_BCRIT`), which belong to their data and tokenizer.
    run_id : str or None, default "run_id"
        Run id column; None for a table of independent rows.
    final_only : bool
        Keep each run's last row (its final checkpoint), indexed by run id.
    columns : mapping or str, optional
        Column mapping (see :func:`load_curves`).

    Returns
    -------
    xarray.Dataset
        ``B_crit`` (tokens per step), ``S_min`` (steps), ``E_min`` (tokens), ``C_min``
        (FLOPs, when ``N`` is present) and the observed ``S``, ``D = BS`` and ``C = 6NBS``,
        along ``run`` (rows) or the run id (``final_only``).
    """
    import xarray as xr

    from bayescale.runs.source import read_table

    table = read_table(
        curves, required=("step", "batch"), run_id=run_id, columns=columns, allow_replicates=True
    )
    run_id = table.attrs.get("run_id", run_id)
    for column in ("step", "batch", "loss"):
        if column not in table:
            raise RunsTableError(f"minimum steps need a {column!r} column")
    if final_only:
        if run_id is None or run_id not in table:
            raise ConfigError("final_only needs the run id column of a learning-curve table")
        ids = np.asarray(table[run_id].values).astype(str)
        runs = list(dict.fromkeys(ids.tolist()))
        table = table.isel(run=[int(np.flatnonzero(ids == r)[-1]) for r in runs])
    dim = run_id if final_only else "run"
    s = xr.DataArray(np.asarray(table["step"].values, dtype=float), dims=dim)
    b = xr.DataArray(np.asarray(table["batch"].values, dtype=float), dims=dim)
    loss = xr.DataArray(np.asarray(table["loss"].values, dtype=float), dims=dim)
    crit = _bcrit_draws(critical)
    b_crit = crit["B_star"] / loss ** (1.0 / crit["alpha_B"])
    out = xr.Dataset(
        {
            "B_crit": b_crit.assign_attrs(units="tokens per step"),
            "S_min": (s / (1 + b_crit / b)).assign_attrs(units="optimizer steps"),
            "E_min": (b * s / (1 + b / b_crit)).assign_attrs(units="tokens"),
            "S": s.assign_attrs(units="optimizer steps"),
            "D": (b * s).assign_attrs(units="tokens"),
        }
    )
    if "N" in table:
        n = xr.DataArray(np.asarray(table["N"].values, dtype=float), dims=dim)
        out["C_min"] = (6 * n * out["E_min"]).assign_attrs(units="FLOPs")
        out["C"] = (6 * n * out["D"]).assign_attrs(units="FLOPs")
    labels = np.asarray(table[dim].values)
    out = out.assign_coords({dim: labels.astype(str) if final_only else labels})
    return out.transpose(*(d for d in ("chain", "draw") if d in out.dims), dim)


def compute_efficient(
    fit: Fit,
    compute: Any,
    *,
    critical: Fit | Mapping[str, float] | None = None,
    seed: int = 0,
) -> xr.Dataset:
    r"""Kaplan's compute-efficient training point for compute budgets, and the frontier exponents.

    Minimising :math:`L(N, S_{min}) = (N_c/N)^{\alpha_N} + (S_c/S_{min})^{\alpha_S}` at fixed
    :math:`C_{min} = 6 N B_{crit}(L) S_{min}` puts the S term at :math:`\alpha_N/\alpha_S` of
    the N term (Kaplan app. B): with :math:`L_N = (N_c/N)^{\alpha_N}`,
    :math:`L = (1 + \alpha_N/\alpha_S) L_N`, :math:`S_{min} = S_c ((\alpha_N/\alpha_S)
    L_N)^{-1/\alpha_S}` and :math:`B_{crit} = B_*/L^{1/\alpha_B}`; every log is linear in
    :math:`\log N`, so each budget has one optimum. Training at :math:`B = B_{crit}` then takes
    :math:`S = 2 S_{min}` steps, :math:`D = 2 E_{min}` tokens and :math:`C = 2 C_{min}`.

    Along this frontier :math:`L \propto C_{min}^{-\alpha_C^{min}}` with
    :math:`1/\alpha_C^{min} = 1/\alpha_N + 1/\alpha_S + 1/\alpha_B`, and
    :math:`N \propto C^{\alpha_C^{min}/\alpha_N}`, :math:`B \propto C^{\alpha_C^{min}/\alpha_B}`,
    :math:`S \propto C^{\alpha_C^{min}/\alpha_S}`, so tokens
    :math:`D \propto C^{1 - \alpha_C^{min}/\alpha_N}`. Kaplan's "convergence is inefficient":
    :math:`D \propto C^{0.27}` grows far slower than :math:`N \propto C^{0.73}`, i.e. large models
    should stop well before convergence. ``p_convergence_inefficient`` is the posterior
    probability that the D exponent is below the N exponent.

    Parameters
    ----------
    fit : Fit
        A ``kaplan_ns_bcrit`` fit, or a ``kaplan_ns`` fit (its step read as :math:`S_{min}`)
        with ``critical`` giving the critical batch.
    compute : float or array
        Budgets :math:`C_{min}` in FLOPs.
    critical : Fit or mapping, optional
        :math:`B_*`, :math:`\alpha_B` when ``fit`` has none: a ``critical_batch`` fit (its draws
        are paired with the fit's at random) or a mapping; default Kaplan's values.
    seed : int
        Seed of the pairing of draws of two fits.

    Returns
    -------
    xarray.Dataset
        Dims ``(chain, draw, C)``: ``N`` (parameters), ``S_min``, ``S`` (steps), ``B_crit``
        (tokens per step), ``E_min``, ``D`` (tokens), ``C_total`` (FLOPs at B = B_crit) and
        ``loss`` (nats/token); dims ``(chain, draw)``: ``alpha_C_min`` and
        ``frontier_exponent_N/B/S/D``; scalar ``p_convergence_inefficient``.
    """
    import xarray as xr

    post = fit.posterior
    needed = ("alpha_N", "alpha_S", "N_c", "S_c")
    if not all(k in post for k in needed):
        raise ConfigError(
            f"the compute-efficient frontier needs an L(N, S) law (kaplan_ns, kaplan_ns_bcrit); "
            f"this fit is of {fit.law.name!r}"
        )
    budget = np.atleast_1d(np.asarray(compute, dtype=float)).ravel()
    if budget.size == 0 or not np.all(np.isfinite(budget) & (budget > 0)):
        raise ConfigError(f"compute budgets must be positive and finite FLOPs, got {compute!r}")
    p = {k: post[k] for k in needed}
    if "B_star" in post and critical is None:
        p |= {k: post[k] for k in KAPLAN_BCRIT}
    else:
        crit = _bcrit_draws(critical)
        if "chain" in crit["B_star"].dims:
            rng = np.random.default_rng(seed)
            flat = {k: v.values.ravel() for k, v in crit.items()}
            size = post.sizes["chain"] * post.sizes["draw"]
            picks = rng.integers(0, flat["B_star"].size, size=size)
            shape = (post.sizes["chain"], post.sizes["draw"])
            crit = {
                k: xr.DataArray(
                    v[picks].reshape(shape), dims=("chain", "draw"), coords=post["alpha_N"].coords
                )
                for k, v in flat.items()
            }
        p |= crit
    c_min = xr.DataArray(budget, dims="C", coords={"C": budget})
    r = p["alpha_N"] / p["alpha_S"]
    slope = 1 + r + p["alpha_N"] / p["alpha_B"]
    const = (
        np.log(6.0)
        + np.log(p["S_c"])
        + np.log(p["B_star"])
        - np.log(r) / p["alpha_S"]
        - np.log1p(r) / p["alpha_B"]
        - (r + p["alpha_N"] / p["alpha_B"]) * np.log(p["N_c"])
    )
    log_n = (np.log(c_min) - const) / slope
    log_ln = p["alpha_N"] * (np.log(p["N_c"]) - log_n)
    log_s_min = np.log(p["S_c"]) - (np.log(r) + log_ln) / p["alpha_S"]
    log_loss = np.log1p(r) + log_ln
    log_b = np.log(p["B_star"]) - log_loss / p["alpha_B"]
    e_min = np.exp(log_s_min + log_b)
    out = xr.Dataset(
        {
            "N": np.exp(log_n).assign_attrs(units="parameters"),
            "S_min": np.exp(log_s_min).assign_attrs(units="optimizer steps"),
            "S": (2 * np.exp(log_s_min)).assign_attrs(units="optimizer steps"),
            "B_crit": np.exp(log_b).assign_attrs(units="tokens per step"),
            "E_min": e_min.assign_attrs(units="tokens"),
            "D": (2 * e_min).assign_attrs(units="tokens"),
            "C_total": (2 * c_min * xr.ones_like(e_min)).assign_attrs(units="FLOPs"),
            "loss": np.exp(log_loss).assign_attrs(units="nats/token"),
        }
    ).transpose("chain", "draw", "C")

    exponents = frontier_exponents(p, np)
    out = out.assign(exponents)
    out["p_convergence_inefficient"] = (
        exponents["frontier_exponent_D"] < exponents["frontier_exponent_N"]
    ).mean()
    out["C"].attrs["units"] = "FLOPs (C_min)"
    return out
