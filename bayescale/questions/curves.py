r"""Learning curves: per-step tables, early-curve extrapolation, Kaplan's derived quantities.

A learning-curve table has one row per logged checkpoint: a run id column, ``N``, ``step``
(optimizer steps), optionally ``batch`` (tokens per step), ``loss`` and any group columns. Fit it
with the curve laws of :mod:`bayescale.laws.base` (Kaplan et al. 2020, sec. 5):

``kaplan_ns``
    :math:`L = (N_c/N)^{\alpha_N} + (S_c/S)^{\alpha_S}`, the step read as :math:`S_{min}`.
``kaplan_ns_bcrit``
    the same with :math:`S_{min} = S/(1 + B_{crit}(L)/B)`, :math:`B_{crit} = B_*/L^{1/\alpha_B}`.
``critical_batch``
    :math:`L = E + (S_c/S_{min})^{\alpha_S}` at one model size, from a batch-size sweep; it
    encodes Kaplan's :math:`(S/S_{min} - 1)(E/E_{min} - 1) = 1` with
    :math:`B_{crit} = E_{min}/S_{min}`.

**Noise model.** Points of one curve are not independent draws around the law: a run that sits
2 % above the law at one step sits about 2 % above it at the next (same seed, data order,
shape), and deviations drift slowly along the curve. ``fit(..., run_id="run_id")`` models both
(:class:`bayescale.model.build.RunEffect`):

* a random offset per run in log loss with learned scale :math:`\tau_{run}` (offsets sum to
  zero, so the law is the average run's), and
* by default (``run_noise="ar1"``) an AR(1) residual along the run's log steps: the residual
  of a row is :math:`\rho = e^{-\Delta\log S/\ell_{run}}` times the previous row's plus an
  innovation, with stationary sd :math:`\sigma`; ``run_noise="offset"`` keeps independent
  scatter instead.

Why the AR(1) residual is the default: extrapolating a run is predicting its residual at a
later step, and how fast residuals decorrelate along a curve is exactly what sets the width of
that prediction. On the 22 Gemstones constant-LR curves (McLeish et al. 2025) truncated at 30 %
of their steps, the 94 % bands of the final loss covered 13 runs with the offset alone (the
law's smooth misfit was read as small independent noise) and 21 with the AR(1) residual.
On curves with only offsets and white noise the AR(1) model learns a short
:math:`\ell_{run}` and behaves as the offset model. Independent errors without offsets count
30 points of one curve as 30 runs, and their bands are far too narrow.

**Thinning.** Loggers write checkpoints at equal step intervals, so most rows sit in the last
decade of steps while the law bends over all decades. :func:`thin_curves` keeps about
``per_run`` rows per run at log-spaced steps (always the first and the last), which gives each
decade of training equal weight, removes most of the short-range correlation between
neighbours, and cuts the model's size 5-10x.

**Extrapolation.** :func:`extrapolate` gives the posterior of a run's loss at later steps
(its final loss, typically) from the first part of its curve, optionally with other finished
runs, as a :class:`bayescale.questions.predict.Prediction`.

**Derived quantities** (:math:`S_{min}`, :math:`E_{min}`, :math:`C_{min}` and the
compute-efficient frontier) are in :mod:`bayescale.questions.efficiency`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bayescale.core.checks import check_prob
from bayescale.core.dims import POINT, SAMPLE_DIMS
from bayescale.core.errors import (
    ConfigError,
    RunsTableError,
    SamplingWarning,
    UnknownNameError,
    did_you_mean,
)
from bayescale.laws.base import get_law
from bayescale.runs.curves import PER_RUN, load_curves, thin_curves

#: Runs are shown in messages up to this many.
_MAX_LISTED = 5

if TYPE_CHECKING:
    import xarray as xr

    from bayescale.fitting.result import Fit
    from bayescale.laws.base import Law
    from bayescale.questions.predict import Prediction

__all__ = [
    "extrapolate",
    "posterior_table",
    "predict_runs",
    "prediction_rows",
]


# --------------------------------------------------------------------------------------------
# Predicting runs: fitted runs at other steps, and new runs from their early points
# --------------------------------------------------------------------------------------------
def _run_steps(steps: Any, runs: Sequence[str]) -> dict[str, np.ndarray]:
    """Return the steps to predict at for each run, from one array or a run -> steps mapping."""
    if isinstance(steps, Mapping):
        unknown = [str(r) for r in steps if str(r) not in runs]
        if unknown:
            raise ConfigError(
                f"steps given for run {unknown[0]!r}, which is not among the runs predicted "
                f"({', '.join(list(runs)[:_MAX_LISTED])}{'...' if len(runs) > _MAX_LISTED else ''})"
            )
        out = {str(r): np.atleast_1d(np.asarray(v, dtype=float)).ravel() for r, v in steps.items()}
    else:
        values = np.atleast_1d(np.asarray(steps, dtype=float)).ravel()
        out = dict.fromkeys(runs, values)
    for r, v in out.items():
        if v.size == 0 or not np.all(np.isfinite(v) & (v > 0)):
            raise ConfigError(f"steps for run {r!r} must be positive and finite, got {v.tolist()}")
    return out


def _run_rows(
    table: xr.Dataset, run_id: str, law: Law
) -> tuple[list[str], dict[str, dict[str, float]], dict[str, float]]:
    """Run ids in order, each run's inputs other than the step (its last row), its last step."""
    ids = np.asarray(table[run_id].values).astype(str)
    runs = list(dict.fromkeys(ids.tolist()))
    fixed, last = {}, {}
    for r in runs:
        row = int(np.flatnonzero(ids == r)[-1])
        fixed[r] = {k: float(table[k].values[row]) for k in law.inputs if k != "step"}
        last[r] = float(table["step"].values[row])
    return runs, fixed, last


def _points(
    runs: Sequence[str],
    fixed: Mapping[str, Mapping[str, float]],
    steps: Mapping[str, np.ndarray],
    law: Law,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Flatten (run, step) pairs into points: the run of each point and the law's inputs."""
    which = np.concatenate([np.full(steps[r].size, r, dtype=object) for r in runs])
    inputs = {
        k: np.concatenate(
            [steps[r] if k == "step" else np.full(steps[r].size, fixed[r][k]) for r in runs]
        )
        for k in law.inputs
    }
    return which, inputs


def _prediction(
    fit: Fit,
    log_curve: xr.DataArray,
    sigma: xr.DataArray,
    which: np.ndarray,
    inputs: Mapping[str, np.ndarray],
    last: Mapping[str, float],
    *,
    run_id: str,
    prob: float,
    seed: int,
) -> Prediction:
    """Wrap per-draw log losses of runs (offsets included) as a Prediction."""
    # xarray and arviz_stats are imported where used: importing a question costs
    # numpy only (see bayescale.plots, which imports questions)
    import xarray as xr

    from bayescale.questions.predict import Prediction, extrapolation

    check_prob(prob)
    coords = {k: (POINT, v) for k, v in inputs.items()} | {run_id: (POINT, which.astype(str))}
    log_curve = log_curve.transpose(*SAMPLE_DIMS, POINT).assign_coords(coords)
    rng = np.random.default_rng([seed, 2])
    eps = xr.DataArray(rng.standard_normal(log_curve.shape), dims=log_curve.dims)
    units = {"units": "nats/token"}
    # numpy's stubs type a ufunc of a DataArray as an ndarray (here and below).
    curve = cast("xr.DataArray", np.exp(log_curve)).assign_attrs(units)
    beyond = extrapolation(fit, inputs)
    # Along the step, what matters is how far past the run's own last logged step a point is.
    own = np.log10(inputs["step"] / np.array([last[r] for r in which]))
    beyond["step"] = xr.DataArray(np.maximum(own, 0.0), dims=POINT, attrs={"units": "decades"})
    return Prediction(
        law=fit.law.name,
        inputs={k: np.asarray(v, dtype=float) for k, v in inputs.items()},
        curve=curve,
        expected=curve,
        observed=cast("xr.DataArray", np.exp(log_curve + sigma * eps)).assign_attrs(units),
        noise=xr.Dataset(
            {
                "sigma": sigma,
                "discrepancy_mean": xr.zeros_like(log_curve).assign_coords(coords),
                "discrepancy_sd": xr.zeros_like(log_curve).assign_coords(coords),
            }
        ),
        extrapolation=beyond,
        prob=prob,
    )


def _check_curve_fit(fit: Fit) -> None:
    if "step" not in fit.law.inputs:
        raise ConfigError(
            f"law {fit.law.name!r} has no step input; learning-curve predictions need a curve "
            "law (kaplan_ns, kaplan_ns_bcrit)"
        )
    if fit.settings.get("likelihood", "normal") != "normal":
        raise ConfigError(
            "learning-curve predictions integrate the run offset analytically and need a "
            "fit with the normal likelihood"
        )


def predict_runs(
    fit: Fit,
    steps: Any,
    *,
    runs: Sequence[str] | None = None,
    prob: float = 0.94,
    seed: int = 0,
) -> Prediction:
    r"""Posterior predictive loss of runs of the fit at other steps, each with its own offset.

    For draw :math:`s`, run :math:`r` and step :math:`S`:
    :math:`\log L = \log f(N_r, S, B_r; \theta_s) + \delta_{r,s}` (``expected``) plus
    :math:`\sigma_s \varepsilon` (``observed``), with :math:`\delta_r` the run's fitted
    offset.

    Parameters
    ----------
    fit : Fit
        A curve law fitted with ``run_id`` (see :func:`bayescale.fit`).
    steps : float, array or mapping
        Optimizer steps to predict at: the same for every run, or ``{run id: steps}``.
    runs : sequence of str, optional
        Run ids to predict (default: every run of the fit, or the keys of ``steps``).
    prob : float, default 0.94
        HDI probability of the summaries.
    seed : int
        Seed of the noise draws.

    Returns
    -------
    Prediction
        Dims ``(chain, draw, point)``; ``point`` has the run id and the inputs as coords.
        ``extrapolation["step"]`` is in decades past the run's last fitted step.
    """
    import xarray as xr

    _check_curve_fit(fit)
    spec = fit.meta.get("run_effect")
    if not spec:
        raise ConfigError("this fit has no run ids; fit the curves with run_id= to predict runs")
    run_id = spec["dim"]
    labels = list(spec["labels"])
    if runs is None:
        runs = [str(r) for r in steps] if isinstance(steps, Mapping) else labels
    missing = [r for r in runs if r not in labels]
    if missing:
        raise UnknownNameError(
            f"no run {missing[0]!r} in the fit. " + did_you_mean(missing[0], labels)
        )
    _, fixed, last = _run_rows(fit.runs, run_id, fit.law)
    per_run = _run_steps(steps, list(runs))
    which, inputs = _points(list(runs), fixed, per_run, fit.law)
    log_curve = fit.expected_log_loss(inputs)
    offset = fit.posterior["run_offset"].sel(
        {run_id: xr.DataArray(which.astype(str), dims="point")}
    )
    log_curve = log_curve + offset.drop_vars(run_id)
    sigma = fit.posterior["sigma"]
    if spec.get("ar1"):
        log_curve, sigma = _ar1_forward(fit, run_id, log_curve, sigma, which, inputs)
    return _prediction(
        fit,
        log_curve,
        sigma,
        which,
        inputs,
        last,
        run_id=run_id,
        prob=prob,
        seed=seed,
    )


def _ar1_forward(
    fit: Fit,
    run_id: str,
    log_curve: xr.DataArray,
    sigma: xr.DataArray,
    which: np.ndarray,
    inputs: Mapping[str, np.ndarray],
) -> tuple[xr.DataArray, xr.DataArray]:
    """Carry each run's AR(1) residual from its nearest earlier fitted row to the points.

    With the residual of that row, ``e = y - f - offset`` per draw, and ``rho =
    exp(-(log S - log S_row)/ell_run)``, the run's curve is ``f + offset + rho e`` and the
    innovation left has sd ``sigma sqrt(1 - rho^2)``. Points before a run's first row get
    ``rho = 0``. (Conditioning on the next fitted row too would narrow interior points a bit.)
    """
    import xarray as xr

    runs = fit.runs
    ids = np.asarray(runs[run_id].values).astype(str)
    steps = np.asarray(runs["step"].values, dtype=float)
    ref = np.full(which.size, -1)
    for j, (r, step) in enumerate(zip(which.astype(str), inputs["step"], strict=True)):
        rows = np.flatnonzero((ids == r) & (steps <= step))
        if rows.size:
            ref[j] = rows[np.argmax(steps[rows])]
    has = ref >= 0
    rows = np.where(has, ref, 0)
    at_rows = {k: np.asarray(runs[k].values, dtype=float)[rows] for k in fit.law.inputs}
    post = fit.posterior
    offset = post["run_offset"].sel({run_id: xr.DataArray(which.astype(str), dims="point")})
    fitted = fit.expected_log_loss(at_rows) + offset.drop_vars(run_id)
    y = xr.DataArray(np.log(np.asarray(runs["loss"].values, dtype=float))[rows], dims="point")
    gap = xr.DataArray(
        np.where(has, np.log(inputs["step"]) - np.log(np.where(has, steps[rows], 1.0)), np.inf),
        dims="point",
    )
    rho = cast("xr.DataArray", np.exp(-gap / post["ell_run"]))  # ndarray to numpy's stubs
    carried = (rho * (y - fitted)).transpose(*log_curve.dims)
    left = sigma * np.sqrt(-np.expm1(-2.0 * gap / post["ell_run"]))
    return log_curve + carried.values, left.transpose(*log_curve.dims)


def extrapolate(
    early: Any,
    steps: Any,
    *,
    fit: Fit | None = None,
    finished: Any = None,
    law: str | Law = "kaplan_ns",
    run_id: str | None = None,
    columns: Mapping[str, str] | str | None = None,
    per_run: int | None = PER_RUN,
    prob: float = 0.94,
    seed: int = 0,
    **fit_options: Any,
) -> Prediction:
    r"""Posterior of runs' later losses (e.g. their final loss) from the first part of their curves.

    Two ways to use what other runs teach:

    * ``fit=None`` (default): fit ``law`` with per-run offsets to the early points, together
      with the curves of ``finished`` runs if given, and predict each early run with its own
      offset (:func:`predict_runs`). Without finished runs the law's step dependence is learned
      from the early parts of all the given runs.
    * ``fit=`` a curve fit of finished runs (with ``run_id``): no new sampling. The fit's
      posterior is the prior; each new run's offset is integrated out analytically (Normal
      likelihood), the draws are reweighted by the early points' marginal likelihood with
      Pareto-smoothed importance sampling (PSIS) and resampled, and each run's offset is drawn
      from its conditional posterior. A :class:`~bayescale.core.errors.SamplingWarning` says when
      the weights are unreliable (Pareto :math:`\hat k > 0.7`): the early points then disagree
      with what the fit expected, and refitting (``fit=None, finished=...``) is the remedy.

    The laws describe training after the learning-rate warmup: drop the warmup rows first
    (Kaplan et al. fit from step ~1e3; on the Gemstones curves, first checkpoint at step 477,
    the final-loss bands covered 18 of 22 runs with every row and 21 from step 2000).

    Parameters
    ----------
    early : DataFrame, path or xarray.Dataset
        Learning-curve rows of the runs to extrapolate (run id, the law's inputs, loss).
    steps : float, array or mapping
        Steps to predict at: the same for every run (e.g. the planned final step), or
        ``{run id: steps}``.
    fit : Fit, optional
        Curve fit of other, finished runs to update (see above).
    finished : DataFrame, path or xarray.Dataset, optional
        Curves of finished runs to fit together with the early points (``fit=None`` only).
    law : str or Law, default "kaplan_ns"
        Law to fit when ``fit`` is None.
    run_id : str, optional
        Run id column of the tables (default: found by name, see :func:`load_curves`).
    columns : mapping or str, optional
        Column mapping for the tables (see :func:`load_curves`).
    per_run : int or None, default 30
        Thin each run to this many log-spaced rows before fitting or updating
        (:func:`thin_curves`); None keeps every row. With ``fit=``, use the thinning the
        fitted runs had.
    prob : float, default 0.94
        HDI probability of the summaries.
    seed : int
        Seed of the fit and of the resampling and noise draws.
    **fit_options
        Passed to :func:`bayescale.fit` (``draws``, ``tune``, ``chains``, ``priors``...).

    Returns
    -------
    Prediction
        Draws of each run's loss at ``steps`` (``expected``: the run's curve; ``observed``:
        plus point-to-point noise), dims ``(chain, draw, point)``; ``point`` has the run id
        and the inputs as coords. When ``fit`` was given, each run is reweighted on its own
        (runs are independent given the law), so draws of different runs are not paired,
        ``noise["sigma"]`` has a ``point`` dim, and ``noise`` holds the Pareto ``k`` and the
        effective sample size of each run's weights (``pareto_k``, ``ess``).

    Examples
    --------
    The first 30 % of each run's steps, warmup dropped, extrapolated to the final step:

    >>> last = table.groupby("run_id")["step"].transform("max")  # doctest: +SKIP
    >>> early = table[(table["step"] >= 2000) & (table["step"] <= 0.3 * last)]  # doctest: +SKIP
    >>> p = extrapolate(early, 83475)  # doctest: +SKIP
    >>> prediction_rows(p)  # doctest: +SKIP
    """
    from bayescale.fitting.pipeline import fit as fit_law

    if fit is not None:
        if finished is not None:
            raise ConfigError(
                "give either fit= (a fit of finished runs to update) or finished= (runs to fit "
                "together with the early points), not both"
            )
        if fit_options:
            raise ConfigError(
                f"fit options ({', '.join(fit_options)}) need fit=None: an existing fit is "
                "updated without sampling"
            )
        return _update(
            fit,
            early,
            steps,
            run_id=run_id,
            columns=columns,
            per_run=per_run,
            prob=prob,
            seed=seed,
        )

    law = get_law(law)
    tables = [load_curves(early, run_id=run_id, columns=columns, required=law.inputs)]
    run_id = tables[0].attrs["run_id"]
    if finished is not None:
        tables.insert(0, load_curves(finished, run_id=run_id, columns=columns, required=law.inputs))
    combined = _combine(tables, run_id, law)
    early_runs = list(dict.fromkeys(np.asarray(tables[-1][run_id].values).astype(str).tolist()))
    if per_run is not None:
        combined = thin_curves(combined, per_run=per_run, run_id=run_id)
    fitted = fit_law(combined, law, run_id=run_id, seed=seed, **fit_options)
    return predict_runs(fitted, steps, runs=early_runs, prob=prob, seed=seed)


def _combine(tables: Sequence[xr.Dataset], run_id: str, law: Law) -> xr.Dataset:
    """One table of the law's inputs, loss and run id from several, run ids kept apart."""
    import xarray as xr

    keep = [*law.inputs, "loss", run_id]
    if len(tables) > 1:
        ids = [set(np.asarray(t[run_id].values).astype(str).tolist()) for t in tables]
        both = sorted(ids[0] & ids[1])
        if both:
            raise RunsTableError(
                f"run {both[0]!r} is both among the finished runs and the early curves; a run "
                "is either finished or being extrapolated"
            )
    parts = [t[keep].drop_vars("run") for t in tables]
    out = xr.concat(parts, dim="run") if len(parts) > 1 else parts[0]
    attrs = dict(tables[-1].attrs)
    return out.assign_coords(run=np.arange(out.sizes["run"])).assign_attrs(attrs, run_id=run_id)


def _update(
    fit: Fit,
    early: Any,
    steps: Any,
    *,
    run_id: str | None,
    columns: Mapping[str, str] | str | None,
    per_run: int | None,
    prob: float,
    seed: int,
) -> Prediction:
    """Reweight a fit's draws by new runs' early points, offsets integrated out (see above)."""
    import xarray as xr

    _check_curve_fit(fit)
    law = fit.law
    table = load_curves(early, run_id=run_id, columns=columns, required=law.inputs)
    run_id = table.attrs["run_id"]
    if per_run is not None:
        # As thin as the fitted runs were: the AR(1) residual's parameters were learned at
        # their spacing, and far denser rows would be weighted by what the fit never saw.
        table = thin_curves(table, per_run=per_run, run_id=run_id)
    runs, fixed, last = _run_rows(table, run_id, law)
    spec = fit.meta.get("run_effect") or {}
    seen = sorted(set(runs) & set(spec.get("labels", ())))
    if seen:
        raise ConfigError(
            f"run {seen[0]!r} is already in the fit; predict it with predict_runs(fit, steps)"
        )
    post = fit.posterior
    shape = (post.sizes["chain"] * post.sizes["draw"],)
    sigma2 = post["sigma"].values.reshape(shape) ** 2
    tau2 = np.zeros(shape)
    if "tau_run" in post:
        # The fitted runs' offsets sum to zero (the law is the average run), so a new run's
        # offset also carries the uncertainty of that average: variance tau^2 (1 + 1/runs).
        n_fitted = len(spec.get("labels", ())) or 1
        spread = 1 + spec.get("projected", 1) / n_fitted
        tau2 = post["tau_run"].values.reshape(shape) ** 2 * spread
    ell = post["ell_run"].values.reshape(shape) if "ell_run" in post else None

    rows = {k: np.asarray(table[k].values, dtype=float) for k in law.inputs}
    mu = fit.expected_log_loss(rows).values.reshape(*shape, -1)
    resid = np.log(np.asarray(table["loss"].values, dtype=float))[None, :] - mu
    ids = np.asarray(table[run_id].values).astype(str)
    log_t = np.log(np.asarray(table["step"].values, dtype=float))
    run_steps = _run_steps(steps, runs)
    which, inputs = _points(runs, fixed, run_steps, law)
    curve = fit.expected_log_loss(inputs).values.reshape(*shape, -1)
    rng = np.random.default_rng([seed, 3])
    log_curve = np.empty_like(curve)
    sigma = np.empty_like(curve)
    diagnostics = {}
    for r in runs:
        # Runs are independent given the law, so each is updated on its own: a joint update of
        # many runs would also relearn the law from their early points, which is a refit.
        own = ids == r
        e, x = resid[:, own], log_t[own]
        log_w, mean, var = _offset_posterior(e, x, sigma2, tau2, ell)
        picks, diagnostics[r] = _resample(log_w, rng)
        offset = mean[picks] + np.sqrt(var[picks]) * rng.standard_normal(shape[0])
        cols = which == r
        log_curve[:, cols] = curve[picks][:, cols] + offset[:, None]
        sigma[:, cols] = np.sqrt(sigma2[picks])[:, None]
        if ell is not None:
            # Given the offset the AR(1) residuals at the logged steps are known; the one
            # nearest before each point is carried forward (as in predict_runs).
            x_new = np.log(inputs["step"][cols])
            before = np.searchsorted(x, x_new, side="right") - 1
            gap = np.where(before >= 0, x_new - x[np.maximum(before, 0)], np.inf)
            rho = np.exp(-gap[None, :] / ell[picks][:, None])
            carried = e[picks][:, np.maximum(before, 0)] - offset[:, None]
            log_curve[:, cols] += rho * carried
            sigma[:, cols] *= np.sqrt(-np.expm1(-2 * gap[None, :] / ell[picks][:, None]))
    bad = {r: d for r, d in diagnostics.items() if d[0] > 0.7}
    if bad:
        r, (khat, ess) = next(iter(bad.items()))
        warnings.warn(
            f"extrapolation of run {r!r} by reweighting is unreliable (Pareto k = {khat:.2f} > "
            f"0.7, ESS {ess:.0f}; {len(bad)} run(s) in all): its early points disagree with "
            "what the fit expected; refit with extrapolate(early, steps, finished=...) instead",
            SamplingWarning,
            stacklevel=3,
        )
    sample = {"chain": [0], "draw": np.arange(shape[0])}
    dims = ("chain", "draw", "point")
    out = _prediction(
        fit,
        xr.DataArray(log_curve[None], dims=dims, coords=sample),
        xr.DataArray(sigma[None], dims=dims, coords=sample),
        which,
        inputs,
        last,
        run_id=run_id,
        prob=prob,
        seed=seed,
    )
    # The importance-sampling health of each run travels with the prediction.
    labels = {run_id: runs}
    out.noise["pareto_k"] = xr.DataArray([diagnostics[r][0] for r in runs], labels, run_id)
    out.noise["ess"] = xr.DataArray([diagnostics[r][1] for r in runs], labels, run_id)
    return out


def _offset_posterior(
    e: np.ndarray, x: np.ndarray, sigma2: np.ndarray, tau2: np.ndarray, ell: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Marginal likelihood of a run's residuals and the posterior of its offset, per draw.

    ``e`` (draws, rows) are residuals of log loss from the law at log steps ``x``. With the
    offset integrated out, :math:`e \sim \mathcal{N}(0, K)`, :math:`K = \tau^2 11^T + A`,
    where :math:`A = \sigma^2 I` for independent scatter and, for the AR(1) residual started
    from zero one median gap :math:`g` before the first row (as in the fit),
    :math:`A_{jk} = e^{-(x_k - x_j)/\ell} v_j` for :math:`j \le k`, with
    :math:`v_1 = \sigma^2(1 - e^{-2g/\ell})` and
    :math:`v_k = \rho_k^2 v_{k-1} + \sigma^2 (1 - \rho_k^2)`. The offset given ``e`` is
    Normal with mean :math:`\tau^2 1^T K^{-1} e` and variance
    :math:`\tau^2 - \tau^4 1^T K^{-1} 1`.

    Returns
    -------
    log_lik, mean, var : ndarray
        One value per draw.
    """
    n = x.size
    if ell is None:
        resid_cov = sigma2[:, None, None] * np.eye(n)[None]
    else:
        gaps = np.diff(x)
        start = float(np.median(gaps)) if n > 1 else 1.0
        rho = np.exp(-np.concatenate([[start], gaps])[None, :] / ell[:, None])
        var = np.empty((sigma2.size, n))
        var[:, 0] = sigma2 * (1 - rho[:, 0] ** 2)
        for k in range(1, n):
            var[:, k] = rho[:, k] ** 2 * var[:, k - 1] + sigma2 * (1 - rho[:, k] ** 2)
        lower = np.minimum.outer(np.arange(n), np.arange(n))
        decay = np.exp(-np.abs(x[:, None] - x[None, :])[None] / ell[:, None, None])
        resid_cov = decay * var[:, lower]
    cov = tau2[:, None, None] + resid_cov
    chol = np.linalg.cholesky(cov)
    ones = np.ones((sigma2.size, n, 1))
    whitened = np.linalg.solve(chol, np.concatenate([e[..., None], ones], axis=2))
    we, w1 = whitened[..., 0], whitened[..., 1]
    log_det = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    log_lik = -0.5 * (n * np.log(2 * np.pi) + log_det + (we**2).sum(axis=1))
    mean = tau2 * (w1 * we).sum(axis=1)
    var = np.maximum(tau2 - tau2**2 * (w1**2).sum(axis=1), 0.0)
    return log_lik, mean, var


def _resample(log_w: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """Systematic resampling of draws by PSIS-smoothed weights; also Pareto k and the ESS."""
    from arviz_stats.base.array import array_stats

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        smoothed, khat = array_stats.psislw(log_w - log_w.max())
    weights = np.exp(smoothed - np.logaddexp.reduce(smoothed))
    size = weights.size
    # Each draw kept in proportion to its weight, with the least resampling noise.
    picks = np.searchsorted(np.cumsum(weights), (rng.uniform() + np.arange(size)) / size)
    return np.minimum(picks, size - 1), (float(khat), float(1.0 / np.sum(weights**2)))


# --------------------------------------------------------------------------------------------
# JSON-ready summaries (for the command line and reports)
# --------------------------------------------------------------------------------------------
def prediction_rows(prediction: Prediction, *, prob: float | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per point of a run prediction (:func:`extrapolate`, :func:`predict_runs`).

    Each row has the run id, the inputs, ``steps_beyond`` (decades past the run's last logged
    step), the median and HDI of the run's curve (``loss_*``) and of its logged loss
    (``observed_*``), in nats/token.
    """
    from bayescale.questions.predict import QUANTITY

    s = prediction.summary(prob=prob)
    run_id = next(
        str(c)
        for c in prediction.expected.coords
        if c not in prediction.inputs and prediction.expected[c].dims == (POINT,)
    )
    ids = np.asarray(prediction.expected[run_id].values).astype(str)
    exp, obs = s.sel({QUANTITY: "expected"}), s.sel({QUANTITY: "observed"})
    rows = []
    for j in range(prediction.n_points):
        row: dict[str, Any] = {run_id: ids[j]}
        row |= {k: float(v[j]) for k, v in prediction.inputs.items()}
        row |= {
            "steps_beyond": float(prediction.extrapolation["step"].values[j]),
            "loss_median": float(exp["median"][j]),
            "loss_lo": float(exp["hdi"][j, 0]),
            "loss_hi": float(exp["hdi"][j, 1]),
            "observed_median": float(obs["median"][j]),
            "observed_lo": float(obs["hdi"][j, 0]),
            "observed_hi": float(obs["hdi"][j, 1]),
        }
        rows.append(row)
    return rows


def posterior_table(ds: xr.Dataset, *, prob: float = 0.94) -> dict[str, Any]:
    """Mean, median and HDI of every variable of ``ds`` over ``chain`` and ``draw``, as JSON.

    Variables without sample dims (fixed values) are reported as they are. Each variable
    gives ``{"units", "values": [{<coords>, "mean", "median", "lo", "hi"}, ...]}``.
    """
    import arviz_stats as azs

    check_prob(prob)
    out: dict[str, Any] = {"prob": prob}
    for name, da in ds.data_vars.items():
        sampled = all(d in da.dims for d in SAMPLE_DIMS)
        other = [d for d in da.dims if d not in SAMPLE_DIMS]
        flat = da.stack(_cell=other) if other else da.expand_dims(_cell=[0])
        if sampled:
            with np.errstate(invalid="ignore", divide="ignore"):
                hdi = azs.hdi(flat, prob=prob, dim=list(SAMPLE_DIMS)).values
            mean, median = flat.mean(SAMPLE_DIMS).values, flat.median(SAMPLE_DIMS).values
        else:
            mean = median = flat.values
            hdi = np.stack([flat.values, flat.values], axis=-1)
        values = []
        for j in range(flat.sizes["_cell"]):
            cell = {d: _plain(flat[d].values[j]) for d in other}
            cell |= {
                "mean": float(mean[j]),
                "median": float(median[j]),
                "lo": float(hdi[j, 0]),
                "hi": float(hdi[j, 1]),
            }
            values.append(cell)
        out[str(name)] = {"units": da.attrs.get("units", ""), "values": values}
    return out


def _plain(value: Any) -> Any:
    """Return a coordinate value as a JSON scalar."""
    return value.item() if hasattr(value, "item") else value
