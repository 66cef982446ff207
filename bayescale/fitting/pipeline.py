"""Fitting a law to a runs table, step by step.

The steps: prepare the data, build the model, sample, and package the result as a
:class:`~bayescale.fitting.result.Fit`.

nutpie compiles a model in seconds; since every data-dependent number is ``pm.Data`` (see
:mod:`bayescale.model.build`), compiled models are reused with new data, so repeated fits
(groups, backtests, calibration) pay compilation once.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayescale.core.checks import check_int
from bayescale.core.errors import (
    ConfigError,
    RunsTableError,
    SamplingWarning,
    did_you_mean,
)
from bayescale.core.priors import Prior, load_priors, merge_priors
from bayescale.fitting.result import Diagnostics, Fit
from bayescale.fitting.samplers import SamplerRequest, get_sampler
from bayescale.laws.base import Law, get_law
from bayescale.model.build import (
    HYPER_PREFIX,
    ModelData,
    Offsets,
    RunEffect,
    build_model,
    check_discrepancy,
    check_likelihood,
    default_priors,
)
from bayescale.model.centring import RUN_NOISES, pilot_centring, pilot_run_centring
from bayescale.model.pooling import resolve_pooling
from bayescale.runs.curves import order_column
from bayescale.runs.source import read_table
from bayescale.runs.table import check_enough_points, group_labels, stored_column

__all__ = ["Prepared", "fit", "package", "prepare", "specify"]


# --------------------------------------------------------------------------------------------
# fit()
# --------------------------------------------------------------------------------------------
def fit(
    runs: Any,
    law: str | Law,
    *,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    priors: Mapping[str, Prior | Mapping[str, Any]] | str | Path | None = None,
    likelihood: str = "normal",
    sampler: str = "nutpie",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    prior_draws: int = 0,
    progressbar: bool = False,
    groups: Sequence[str] | str = (),
    pool: Mapping[str, str] | None = None,
    centred: bool | Mapping[str, bool] | None = None,
    offset_by: str | None = None,
    offset_reference: str | None = None,
    target_accept: float | None = None,
    discrepancy: str | None = None,
    run_id: str | None = None,
    run_noise: str = "ar1",
) -> Fit:
    """Fit a scaling law to a table of training runs, pooled or hierarchically over groups.

    Parameters
    ----------
    runs : DataFrame, path, bundled dataset name or xarray.Dataset
        The runs table (see :func:`bayescale.runs.table.load_runs`).
    law : str or Law
        Law to fit, e.g. ``"chinchilla"`` (see :func:`bayescale.laws.base.list_laws`).
    columns : mapping or str, optional
        Map canonical names to the table's columns, e.g. ``"N=params,D=tokens"``.
    compute_unit : {"flops", "pf-days"}
        Unit of the ``C`` column in the table (1 PF-day = 8.64e19 FLOPs).
    derive_compute : bool
        Set ``C = 6 N D`` (FLOPs) from ``N`` and ``D``.
    priors : mapping or path, optional
        Overrides of the default priors by parameter name (``{"alpha": {"dist": "Normal",
        "mu": 0.3, "sigma": 0.05}}``), or a JSON/TOML file of them.
    likelihood : {"normal", "student_t"}
        Likelihood of the log loss; Student-t resists outlier runs.
    sampler : {"nutpie", "pymc", "exact"}
        ``"exact"`` draws from the conjugate posterior (log-linear laws with Normal priors).
    draws, tune, chains : int
        Posterior draws per chain, tuning steps per chain, number of chains.
    seed : int
        Random seed; the same seed gives the same draws.
    prior_draws : int
        If positive, also draw this many samples from the prior and prior predictive.
    progressbar : bool
        Show sampling progress.
    groups : str or sequence of str
        Group columns (model family, shape, dataset...). Law parameters then vary by group
        according to ``pool``. Several columns are crossed into one group label ``a/b``.
    pool : mapping, optional
        Pooling per parameter: ``"partial"`` (group values drawn from a learned population;
        the default for exponents and scales), ``"pooled"`` (one shared value; the default for
        the irreducible loss ``E``, a property of the data rather than the model) or ``"none"``
        (independent per group). Keys are latent names or the papers' names where they map to
        one latent (``alpha_N``, ``E``, ``N_c`` of single-input laws, ``A``, ``B``).
    centred : bool or mapping, optional
        Force the centred (True) or non-centred (False) form of partially pooled parameters;
        default: chosen per parameter and group from the data (see
        :func:`bayescale.model.centring.pilot_centring`).
    offset_by : str, optional
        Column whose levels shift the log loss by a constant (Kaplan's transfer offsets, e.g.
        the eval set); the most common level (or ``offset_reference``) is the reference.
    offset_reference : str, optional
        Reference level of ``offset_by``.
    target_accept : float, optional
        NUTS target acceptance rate. Default 0.8, and 0.95 for fits with groups: the
        curvature of a hierarchical posterior changes with the population scale, and smaller
        steps keep its narrow regions free of divergences for a modest cost. Also 0.95 with a
        discrepancy term, whose scale trades off against ``sigma`` in the same way, and with
        ``run_id``, whose run-offset scale has the same funnel when runs barely differ.
    discrepancy : {None, "gp", "distance"}
        Model-discrepancy term (see :data:`bayescale.model.build.DISCREPANCIES`): ``"gp"`` adds a
        Gaussian-process residual over the log inputs, so structured misfit is not mistaken
        for noise and bands widen away from the data; ``"distance"`` lets the scatter grow
        with the distance from the centre of the data, ``sqrt(sigma^2 + (kappa d)^2)``.
        Predictions use it (see :mod:`bayescale.questions.predict`).
    run_id : str, optional
        Column naming the run of each row, for learning-curve tables (one row per logged
        checkpoint). The curves are checked (:func:`bayescale.runs.curves.load_curves`) and each
        run gets a random offset in log loss (scale ``tau_run``, summing to zero over runs),
        so the points of one curve are not counted as independent runs (see
        :mod:`bayescale.questions.curves`).
    run_noise : {"ar1", "offset"}
        Residual around each run's offset (with ``run_id``): ``"ar1"`` (default), an AR(1)
        process along the run's log steps with correlation length ``ell_run`` (e-folds of
        steps) and stationary sd ``sigma``; ``"offset"``, independent scatter ``sigma``. AR(1)
        is the default because it is what makes bands for later steps of a run honest (see
        :mod:`bayescale.questions.curves`).

    Returns
    -------
    Fit
        The posterior with diagnostics. A :class:`~bayescale.core.errors.SamplingWarning` is issued
        when diagnostics show trouble.

    Examples
    --------
    >>> import bayescale as bs
    >>> f = bs.fit("kaplan_ladder", "kaplan_nd", draws=200, tune=200, chains=2)  # doctest: +SKIP
    >>> f.summary()  # doctest: +SKIP
    """
    law = get_law(law)
    likelihood = check_likelihood(likelihood)
    discrepancy = check_discrepancy(discrepancy, likelihood)
    sample = get_sampler(sampler)
    for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1)):
        check_int(name, value, low)
    check_int("prior_draws", prior_draws, 0)
    if target_accept is not None and not 0 < target_accept < 1:
        raise ConfigError(f"target_accept must be between 0 and 1, got {target_accept}")
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    if sampler == "exact" and discrepancy is not None:
        raise ConfigError(
            "the exact sampler needs a constant scatter; use sampler='nutpie' with discrepancy"
        )
    if sampler == "exact" and (group_cols or offset_by or run_id):
        raise ConfigError(
            "the exact sampler fits pooled laws only; use sampler='nutpie' with groups"
        )
    prepared = prepare(
        runs,
        law,
        columns=columns,
        compute_unit=compute_unit,
        derive_compute=derive_compute,
        groups=group_cols,
        pool=pool,
        centred=centred,
        offset_by=offset_by,
        offset_reference=offset_reference,
        discrepancy=discrepancy,
        run_id=run_id,
        run_noise=run_noise,
    )
    request = specify(
        prepared,
        priors=priors,
        likelihood=likelihood,
        draws=draws,
        tune=tune,
        chains=chains,
        seed=seed,
        progressbar=progressbar,
        target_accept=target_accept,
    )
    result = package(sample(request), prepared, request, sampler=sampler, prior_draws=prior_draws)
    for problem in result.diagnostics.problems:
        warnings.warn(f"{law.name} fit: {problem}", SamplingWarning, stacklevel=2)
    return result


# --------------------------------------------------------------------------------------------
# The steps
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """A runs table made ready for one law (the first step of :func:`fit`).

    Attributes
    ----------
    law : Law
        The law to fit.
    table : xarray.Dataset
        The checked runs table, along dim ``run``.
    data : ModelData
        What the model is built from: centred log inputs, log loss, groups, offsets, run
        effects (centring of hierarchical parameters not chosen yet: see :func:`specify`).
    groups : list of str
        Group columns, as the table stores them.
    run_id : str or None
        Run id column of a learning-curve table, as the table stores it.
    """

    law: Law
    table: xr.Dataset
    data: ModelData
    groups: list[str]
    run_id: str | None = None


def prepare(
    runs: Any,
    law: str | Law,
    *,
    columns: Mapping[str, str] | str | None = None,
    compute_unit: str = "flops",
    derive_compute: bool = False,
    groups: Sequence[str] | str = (),
    pool: Mapping[str, str] | None = None,
    centred: bool | Mapping[str, bool] | None = None,
    offset_by: str | None = None,
    offset_reference: str | None = None,
    discrepancy: str | None = None,
    run_id: str | None = None,
    run_noise: str = "ar1",
) -> Prepared:
    """Read and check the runs for a law, and lay out the model's data (step 1 of :func:`fit`).

    Parameters are those of :func:`fit` that say what the data are and how they are grouped.

    Returns
    -------
    Prepared
        The table and the model data.

    Raises
    ------
    RunsTableError
        If the table is unusable for the law (missing columns, too few points, a group with
        fewer than :data:`MIN_GROUP_RUNS` runs, broken learning curves).
    ConfigError
        For conflicting options (a column both group and offset, ``pool`` without groups, an
        unknown ``run_noise``).
    """
    law = get_law(law)
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    if offset_by is not None and offset_by in group_cols:
        raise ConfigError(f"column {offset_by!r} cannot be both a group and the offset column")
    if not group_cols and (pool or centred is not None):
        raise ConfigError("pool= and centred= need groups=; no group column was given")
    if run_id is not None and run_noise not in RUN_NOISES:
        raise ConfigError(
            f"unknown run_noise {run_noise!r}. " + did_you_mean(run_noise, RUN_NOISES)
        )
    table = read_table(
        runs,
        required=(*law.inputs, "loss"),
        groups=[*group_cols, *([offset_by] if offset_by else [])],
        run_id=run_id,
        law_name=law.name,
        columns=columns,
        compute_unit=compute_unit,
        derive_compute=derive_compute,
    )
    check_enough_points(table, law.inputs, law.n_params, law.name)
    # From here on, columns are named as the loaded table stores them ("run" as "run_label").
    group_cols = [stored_column(g) for g in group_cols]
    offset_by = None if offset_by is None else stored_column(offset_by)
    if run_id is not None:
        run_id = table.attrs.get("run_id", stored_column(run_id))
    pooling = offsets = run_effect = None
    if group_cols:
        labels = group_labels(table, group_cols)
        _check_group_sizes(labels, group_cols)
        pooling = resolve_pooling(
            law.latents,
            labels,
            dim="_".join(group_cols),
            pool=pool,
            centred=centred,
            aliases=law.aliases,
            shared=law.shared,
        )
    if offset_by is not None:
        offsets = Offsets.from_labels(offset_by, table[offset_by].values, offset_reference)
    if run_id is not None:
        steps = table[order_column(table)].values if run_noise == "ar1" else None
        run_effect = RunEffect.from_labels(run_id, table[run_id].values, steps=steps)
    data = ModelData.from_arrays(
        {k: table[k].values for k in law.inputs},
        table["loss"].values,
        pooling=pooling,
        offsets=offsets,
        discrepancy=discrepancy,
        run_effect=run_effect,
    )
    return Prepared(law, table, data, group_cols, run_id)


def specify(
    prepared: Prepared,
    *,
    priors: Mapping[str, Prior | Mapping[str, Any]] | str | Path | None = None,
    likelihood: str = "normal",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    progressbar: bool = False,
    target_accept: float | None = None,
) -> SamplerRequest:
    """Settle the model: priors, the form of hierarchical parameters, step size target.

    Step 2 of :func:`fit`. The default priors (scaled to the data) are merged with
    ``priors``; partially pooled parameters and run offsets not forced centred or non-centred
    get the form a short pilot fit prefers (see :mod:`bayescale.model.centring`).

    Parameters are those of :func:`fit` of the same names.

    Returns
    -------
    SamplerRequest
        Everything a sampler needs; its ``data`` carries the chosen centring.
    """
    law, data = prepared.law, prepared.data
    if isinstance(priors, str | Path):
        priors = load_priors(priors)
    defaults = default_priors(
        law,
        data.summary,
        likelihood=likelihood,
        pooling=data.pooling,
        offsets=data.offsets,
        discrepancy=data.discrepancy,
        run_effect=data.run_effect,
    )
    used = merge_priors(defaults, priors, law_name=law.name)
    base = {k: used.get(k, p) for k, p in law.default_priors(data.summary).items()}
    pooling = data.pooling
    if pooling is not None and set(pooling.centred) - set(pooling.forced):
        chosen = pilot_centring(law.log_loss, data.u, data.log_loss, pooling, base)
        data = replace(data, pooling=pooling.with_centring(chosen))
    if data.run_effect is not None:
        run_effect = pilot_run_centring(law, data.u, data.log_loss, data.run_effect, base)
        data = replace(data, run_effect=run_effect)
    if target_accept is None:
        # Two scales (noise and discrepancy) trade off near zero much as a hierarchy's do.
        hard = pooling is not None or data.discrepancy is not None or data.run_effect is not None
        target_accept = 0.95 if hard else 0.8
    return SamplerRequest(
        law, data, used, likelihood, draws, tune, chains, seed, progressbar, target_accept
    )


def package(
    raw: xr.DataTree,
    prepared: Prepared,
    request: SamplerRequest,
    *,
    sampler: str,
    prior_draws: int = 0,
) -> Fit:
    """Package a sampler's draws as a :class:`Fit` (step 4 of :func:`fit`).

    Parameters
    ----------
    raw : xarray.DataTree
        The sampler's output (``posterior``, ``sample_stats``).
    prepared, request : Prepared, SamplerRequest
        The first two steps' results.
    sampler : str
        Name of the sampler used, stored in the settings.
    prior_draws : int
        If positive, also draw this many samples from the prior and prior predictive.

    Returns
    -------
    Fit
        With the data groups, settings, diagnostics and the metadata a saved fit needs to
        predict (source, columns, groups, pooling, offsets, run effects).
    """
    law, data, table = request.law, request.data, prepared.table
    tree = _assemble(raw, law, table, data)
    if data.run_effect is not None:
        # A compiled model reused with new data keeps the run ids it was compiled with.
        post = tree["posterior"].to_dataset()
        run_coords = {prepared.run_id: list(data.run_effect.labels)}
        tree["posterior"] = xr.DataTree(post.assign_coords(run_coords))
    if prior_draws:
        tree = _add_prior(
            tree, law, data, request.priors, request.likelihood, prior_draws, request.seed
        )
    settings = {
        "sampler": sampler,
        "draws": request.draws,
        "tune": request.tune,
        "chains": request.chains,
        "seed": request.seed,
        "likelihood": request.likelihood,
        "target_accept": request.target_accept,
    }
    if data.discrepancy is not None:
        # With its unit of distance, so saved fits predict with the scale they were fitted.
        settings |= {"discrepancy": data.discrepancy, "discrepancy_scale": data.distance_scale}
    meta = {
        "source": str(table.attrs.get("source", "")),
        "columns": table.attrs.get("columns", "{}"),
        "groups": prepared.groups,
        "pooling": None if data.pooling is None else data.pooling.to_dict(),
        "offsets": None if data.offsets is None else data.offsets.to_dict(),
        "run_effect": None if data.run_effect is None else data.run_effect.to_dict(),
    }
    diagnostics = Diagnostics.from_tree(tree)
    return Fit(law, tree, request.priors, data.summary, settings, diagnostics, meta)


#: Fewest runs a group of a hierarchical fit may have: one run cannot tell the group's own
#: curve from its noise, so its parameters would be the population's prior and nothing else.
MIN_GROUP_RUNS = 2


def _check_group_sizes(labels: np.ndarray, columns: Sequence[str]) -> None:
    names, counts = np.unique(labels, return_counts=True)
    small = names[counts < MIN_GROUP_RUNS]
    if small.size:
        which = ", ".join(repr(str(n)) for n in small[:5]) + (
            f" and {small.size - 5} more" if small.size > 5 else ""
        )
        raise RunsTableError(
            f"group column {'/'.join(columns)!r}: group {which} has fewer than "
            f"{MIN_GROUP_RUNS} runs; a hierarchical fit needs at least {MIN_GROUP_RUNS} runs per "
            "group. Drop those runs or merge the group into another."
        )


def _assemble(raw: xr.DataTree, law: Law, table: xr.Dataset, data: ModelData) -> xr.DataTree:
    """Keep posterior and sample stats from the sampler; add data groups in a fixed layout."""
    post = raw["posterior"].to_dataset()
    post = post.drop_vars([v for v in post.data_vars if str(v).startswith(HYPER_PREFIX)])
    groups: dict[str, Any] = {"posterior": post}
    if "sample_stats" in raw.children:
        groups["sample_stats"] = raw["sample_stats"].to_dataset()
    run = {"run": table["run"].values}
    groups["observed_data"] = xr.Dataset({"log_loss": ("run", data.log_loss)}, coords=run)
    groups["constant_data"] = xr.Dataset(
        {k: ("run", table[k].values) for k in law.inputs}, coords=run
    )
    groups["runs"] = table
    return xr.DataTree.from_dict(groups)


def _add_prior(
    tree: xr.DataTree,
    law: Law,
    data: ModelData,
    priors: dict[str, Prior],
    likelihood: str,
    draws: int,
    seed: int,
) -> xr.DataTree:
    # pymc is imported where used (~0.7 s): in this module only prior draws need it; each
    # sampler imports what it uses
    import pymc as pm

    model = build_model(law, data, priors=priors, likelihood=likelihood)
    prior = pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
    for group in ("prior", "prior_predictive"):
        ds = prior[group].to_dataset()
        tree[group] = xr.DataTree(
            ds.drop_vars([v for v in ds.data_vars if v.startswith(HYPER_PREFIX)])
        )
    return tree
