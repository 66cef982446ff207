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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.core.errors import (
    ConfigError,
    SamplingWarning,
    did_you_mean,
)
from bayescale.core.priors import Prior, merge_priors
from bayescale.fitting.result import Diagnostics, Fit
from bayescale.fitting.samplers import SamplerRequest, get_sampler
from bayescale.laws.base import Law, get_law
from bayescale.model.build import (
    HYPER_PREFIX,
    ModelData,
    Offsets,
    build_model,
    check_discrepancy,
    check_likelihood,
    default_priors,
)
from bayescale.model.centring import pilot_centring
from bayescale.model.pooling import resolve_pooling
from bayescale.runs.table import group_labels

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["fit"]


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
    import xarray as xr

    from bayescale.core.priors import load_priors
    from bayescale.runs.table import check_enough_points, load_runs, stored_column

    law = get_law(law)
    likelihood = check_likelihood(likelihood)
    discrepancy = check_discrepancy(discrepancy, likelihood)
    sample = get_sampler(sampler)
    for name, value, low in (
        ("draws", draws, 1),
        ("tune", tune, 0),
        ("chains", chains, 1),
        ("prior_draws", prior_draws, 0),
    ):
        if not isinstance(value, int | np.integer) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(priors, str | Path):
        priors = load_priors(priors)
    group_cols = [groups] if isinstance(groups, str) else list(groups)
    if offset_by is not None and offset_by in group_cols:
        raise ConfigError(f"column {offset_by!r} cannot be both a group and the offset column")
    if sampler == "exact" and discrepancy is not None:
        raise ConfigError(
            "the exact sampler needs a constant scatter; use sampler='nutpie' with discrepancy"
        )
    if sampler == "exact" and (group_cols or offset_by or run_id):
        raise ConfigError(
            "the exact sampler fits pooled laws only; use sampler='nutpie' with groups"
        )
    if not group_cols and (pool or centred is not None):
        raise ConfigError("pool= and centred= need groups=; no group column was given")
    label_cols = [*group_cols, *([offset_by] if offset_by else [])]

    if run_id is not None:
        from bayescale.runs.curves import load_curves

        table = load_curves(
            runs,
            run_id=run_id,
            columns=columns,
            required=law.inputs,
            groups=label_cols,
            law_name=law.name,
            compute_unit=compute_unit,
            derive_compute=derive_compute,
        )
    elif isinstance(runs, xr.Dataset):
        table = runs
        absent = [c for c in (*law.inputs, "loss", *label_cols) if c not in table]
        if absent:
            from bayescale.core.errors import RunsTableError

            raise RunsTableError(
                f"runs table has no column {absent[0]!r} (needed by law {law.name!r})"
            )
    else:
        table = load_runs(
            runs,
            columns=columns,
            compute_unit=compute_unit,
            derive_compute=derive_compute,
            required=(*law.inputs, "loss"),
            groups=label_cols,
            law_name=law.name,
        )
    check_enough_points(table, law.inputs, law.n_params, law.name)
    # From here on, columns are named as the loaded table stores them ("run" as "run_label").
    group_cols = [stored_column(g) for g in group_cols]
    offset_by = None if offset_by is None else stored_column(offset_by)
    if run_id is not None:
        run_id = table.attrs.get("run_id", stored_column(run_id))
    pooling = offsets = None
    if group_cols:
        labels = group_labels(table, group_cols)
        _check_group_sizes(labels, group_cols)
        dim = "_".join(group_cols)
        pooling = resolve_pooling(
            law.latents,
            labels,
            dim=dim,
            pool=pool,
            centred=centred,
            aliases=law.aliases,
            shared=law.shared,
        )
    if offset_by is not None:
        offsets = Offsets.from_labels(offset_by, table[offset_by].values, offset_reference)
    run_effect = None
    if run_id is not None:
        from bayescale.model.build import RunEffect
        from bayescale.model.centring import RUN_NOISES
        from bayescale.runs.curves import order_column

        if run_noise not in RUN_NOISES:
            raise ConfigError(
                f"unknown run_noise {run_noise!r}. " + did_you_mean(run_noise, RUN_NOISES)
            )
        steps = table[order_column(table)].values if run_noise == "ar1" else None
        run_effect = RunEffect.from_labels(run_id, table[run_id].values, steps=steps)
    inputs = {k: table[k].values for k in law.inputs}
    data = ModelData.from_arrays(
        inputs,
        table["loss"].values,
        pooling=pooling,
        offsets=offsets,
        discrepancy=discrepancy,
        run_effect=run_effect,
    )
    defaults = default_priors(
        law,
        data.summary,
        likelihood=likelihood,
        pooling=pooling,
        offsets=offsets,
        discrepancy=discrepancy,
        run_effect=run_effect,
    )
    used = merge_priors(defaults, priors, law_name=law.name)
    if pooling is not None and set(pooling.centred) - set(pooling.forced):
        base = {k: used.get(k, p) for k, p in law.default_priors(data.summary).items()}
        chosen = pilot_centring(law.log_loss, data.u, data.log_loss, pooling, base)
        pooling = pooling.with_centring(chosen)
        data = replace(data, pooling=pooling)
    if run_effect is not None:
        from bayescale.model.centring import pilot_run_centring

        base = {k: used.get(k, p) for k, p in law.default_priors(data.summary).items()}
        run_effect = pilot_run_centring(law, data.u, data.log_loss, run_effect, base)
        data = replace(data, run_effect=run_effect)
    if target_accept is None:
        # Two scales (noise and discrepancy) trade off near zero much as a hierarchy's do.
        target_accept = (
            0.95
            if pooling is not None or discrepancy is not None or run_effect is not None
            else 0.8
        )
    elif not 0 < target_accept < 1:
        raise ConfigError(f"target_accept must be between 0 and 1, got {target_accept}")
    req = SamplerRequest(
        law, data, used, likelihood, draws, tune, chains, seed, progressbar, target_accept
    )
    raw = sample(req)

    tree = _assemble(raw, law, table, data)
    if run_effect is not None:
        # A compiled model reused with new data keeps the run ids it was compiled with.
        post = tree["posterior"].to_dataset()
        tree["posterior"] = xr.DataTree(post.assign_coords({run_id: list(run_effect.labels)}))
    if prior_draws:
        tree = _add_prior(tree, law, data, used, likelihood, prior_draws, seed)
    settings = {
        "sampler": sampler,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "seed": seed,
        "likelihood": likelihood,
        "target_accept": target_accept,
    }
    if discrepancy is not None:
        # With its unit of distance, so saved fits predict with the scale they were fitted.
        settings |= {"discrepancy": discrepancy, "discrepancy_scale": data.distance_scale}
    diagnostics = Diagnostics.from_tree(tree)
    for problem in diagnostics.problems:
        warnings.warn(f"{law.name} fit: {problem}", SamplingWarning, stacklevel=2)
    meta = {
        "source": str(table.attrs.get("source", "")),
        "columns": table.attrs.get("columns", "{}"),
        "groups": group_cols,
        "pooling": None if pooling is None else pooling.to_dict(),
        "offsets": None if offsets is None else offsets.to_dict(),
        "run_effect": None if run_effect is None else run_effect.to_dict(),
    }
    return Fit(law, tree, used, data.summary, settings, diagnostics, meta)


#: Fewest runs a group of a hierarchical fit may have: one run cannot tell the group's own
#: curve from its noise, so its parameters would be the population's prior and nothing else.
MIN_GROUP_RUNS = 2


def _check_group_sizes(labels: np.ndarray, columns: Sequence[str]) -> None:
    names, counts = np.unique(labels, return_counts=True)
    small = names[counts < MIN_GROUP_RUNS]
    if small.size:
        from bayescale.core.errors import RunsTableError

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
    import xarray as xr

    post = raw["posterior"].to_dataset()
    post = post.drop_vars([v for v in post.data_vars if v.startswith(HYPER_PREFIX)])
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
    import pymc as pm
    import xarray as xr

    model = build_model(law, data, priors=priors, likelihood=likelihood)
    prior = pm.sample_prior_predictive(draws=draws, model=model, random_seed=seed)
    for group in ("prior", "prior_predictive"):
        ds = prior[group].to_dataset()
        tree[group] = xr.DataTree(
            ds.drop_vars([v for v in ds.data_vars if v.startswith(HYPER_PREFIX)])
        )
    return tree
