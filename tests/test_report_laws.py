"""The report renders for every registered law, pooled, over 2 and 20 groups, and per run.

Issue 17: ``bayescale report`` crashed on a 2-group hierarchical Chinchilla fit because its pair
plot asked ArviZ for 144 panels (every population location and scale). Here every law of the
registry (``ids`` = law names, so a new law is covered as soon as it is registered) is fitted
pooled, with 2 groups and with 20 groups, and the learning-curve laws (those with a ``step``
input) also with ``run_id=``; each fit's report must draw every figure that applies to it,
give every image a text alternative, keep every figure within :data:`MAX_PANELS` panels and
show the diagnostic quantities that :func:`bayescale.plots.diagnostic_params` ranks first.

How the fits are made cheaply. With nutpie, a fit costs mostly the compilation of its model
graph (measured cold, on 2 busy cores: 13 s for power_n_e over 2 groups, 19 s for Chinchilla
over 20), and pooled, 2-group and 20-group models are different graphs, so 36 real fits would
take 8-11 minutes cold. PyMC's own NUTS is no cheaper (8-14 s of C compilation a model; with
the Python linker 2-4.5 minutes of sampling a fit). So:

* pooled log-linear laws use the ``exact`` sampler (a real posterior, nothing compiled);
* every other case goes through :func:`bayescale.fit` as usual (runs table checks, pooling and
  its centring, default priors, the PyMC model of :func:`bayescale.model.build.build_model`,
  assembly into a :class:`~bayescale.Fit` with diagnostics and metadata) with one change: the
  registered sampler is replaced by draws from that same model's prior, made by PyMC with the
  Python linker, which compiles nothing (0.2-1 s a fit). The report sees a real ``Fit`` with
  exactly the variables, dims and coordinates a NUTS fit of that model has; only the values
  differ, and prior draws are the harder case for a report (heavy tails, scales overflowing
  where an exponent is near zero), as a fit to very few runs would be. What such a fit lacks
  is NUTS's ``sample_stats`` (divergences in the pair plot), which the real nutpie fits of
  ``tests/test_report.py`` cover.

What is left costs the report itself, 1.5-7 s a fit (the pair plot and, over 20 groups, one
law curve per group and input), about 100 s for the module on one core.

Whether a law can be fitted with groups at all is decided by
:func:`bayescale.model.pooling.transform_of` (partial pooling needs Normal or LogNormal priors): for
a law it refuses, the grouped cases assert that :func:`bayescale.fit` says so, instead of
skipping.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import xarray as xr
from conftest import RANGES, design, simulate_law, true_params
from test_curves import simulate_curves
from test_report import DATA_URI, _images

import bayescale as bs
import bayescale.report
from bayescale import plots
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, SamplingWarning
from bayescale.fitting import samplers as fitting
from bayescale.laws.base import DataSummary, get_law, list_laws
from bayescale.model.build import build_model
from bayescale.model.pooling import transform_of

LAWS = list_laws()
#: Laws of learning curves (a ``step`` input): also fitted per run with ``run_id=``.
CURVE_LAWS = [name for name in LAWS if "step" in get_law(name).inputs]
GROUPS = (0, 2, 20)
N_RUNS = 40
#: 2 chains x 25 draws: enough for rank plots and HDIs, and the prior draws cost ~10 ms each.
DRAWS = {"chains": 2, "draws": 25, "seed": 0}
#: The most panels any figure of the report may have: a full pair plot, 6 x 6.
MAX_PANELS = plots.MAX_PAIR_PARAMS**2
#: What the report is asked to predict at, so its prediction tables and fan are drawn too.
TARGETS = {"N": [1e10], "C": [1e22]}
ALT = re.compile(r'<img alt="([^"]*)" src=')
RANK = "rank plots (flat when the chains agree)"
PAIR = "pair plot of the parameters"
PRIOR = "prior against posterior"


def _sample_prior(req: fitting.SamplerRequest) -> xr.DataTree:
    """Draws from the prior of the model NUTS would sample, as a (chain, draw) posterior."""
    import pymc as pm

    model = build_model(req.law, req.data, priors=req.priors, likelihood=req.likelihood)
    n = req.chains * req.draws
    prior = pm.sample_prior_predictive(draws=n, model=model, random_seed=req.seed)
    prior = prior["prior"].to_dataset()
    post = prior.isel(chain=0, drop=True).assign_coords(draw=np.arange(n))
    post = post.coarsen(draw=req.draws).construct(draw=("chain", "draw"))
    post = post.assign_coords(chain=np.arange(req.chains), draw=np.arange(req.draws))
    return xr.DataTree.from_dict({"posterior": post})


@pytest.fixture(scope="module")
def prior_sampler():
    """Register ``sampler="prior"`` for this module only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(fitting._SAMPLERS, "prior", _sample_prior)
        yield


def poolable(law: str, runs) -> bool:
    """Whether every latent the law does not share can be partially pooled (its prior family)."""
    spec = get_law(law)
    summary = DataSummary.from_arrays(
        {k: runs[k].to_numpy() for k in spec.inputs}, runs["loss"].to_numpy()
    )
    try:
        for name, prior in spec.default_priors(summary).items():
            if name not in spec.shared:
                transform_of(prior, name)
    except ConfigError:
        return False
    return True


def ladder(law: str, groups: int):
    """40 simulated runs of ``law``, dealt round-robin into ``groups`` groups ``g00``..."""
    runs = simulate_law(law, n_runs=N_RUNS, noise_sd=0.02, seed=3)
    if groups:
        runs["family"] = [f"g{i % groups:02d}" for i in range(N_RUNS)]
    return runs


def curves(law: str):
    """Four runs' learning curves of ``law`` (other inputs drawn as in :func:`design`)."""
    fixed = design(law, 4, seed=1)
    runs = {f"run{i}": {k: float(v[i]) for k, v in fixed.items() if k != "step"} for i in range(4)}
    steps = np.unique(np.rint(np.geomspace(*RANGES["step"], 10)))
    return simulate_curves(law, true_params(law), runs, steps, seed=2, run_column="run_id")


@dataclass
class Case:
    """One fit, its report and what went into the report's figures."""

    law: str
    kind: str  # "pooled", "groups" or "run_id"
    fit: bs.Fit | None = None
    html: str = ""
    panels: tuple[int, ...] = ()
    refused: ConfigError | None = None


def _fit(runs, law: str, *, prior_draws: int = 0, **options) -> bs.Fit:
    """A small fit; its PyMC functions built by the Python linker (nothing compiled)."""
    import pytensor

    with warnings.catch_warnings(), pytensor.config.change_flags(mode="FAST_COMPILE"):
        # 25 draws a chain: R-hat and ESS fall short of the thresholds by design.
        warnings.simplefilter("ignore", SamplingWarning)
        return bs.fit(runs, law, prior_draws=prior_draws, **DRAWS, **options)


def _render(case: Case) -> Case:
    """Build the report, recording the panels of every figure on its way into the page."""
    panels = []
    encode = bayescale.report.figure_data_uri

    def counting(fig):
        panels.append(len(fig.axes))
        return encode(fig)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bayescale.report, "figure_data_uri", counting)
        case.html = bayescale.report.build_report({case.law: case.fit}, **TARGETS)
    case.panels = tuple(panels)
    return case


@functools.cache
def make_case(law: str, groups: int | str) -> Case:
    """Fit ``law`` pooled (``groups=0``), over ``groups`` groups or per run (``"run_id"``).

    Only the 20-group and per-run fits get prior draws, for the prior-posterior figure: it has
    one panel per quantity like the rank plot, and those fits have the most quantities.
    """
    if groups == "run_id":
        fit = _fit(curves(law), law, run_id="run_id", sampler="prior", prior_draws=25)
        return _render(Case(law, "run_id", fit))
    runs = ladder(law, groups)
    if not groups:
        sampler = "exact" if get_law(law).log_linear else "prior"
        return _render(Case(law, "pooled", _fit(runs, law, sampler=sampler)))
    options = {"groups": "family", "sampler": "prior", "prior_draws": 25 if groups >= 20 else 0}
    if not poolable(law, runs):
        with pytest.raises(ConfigError, match=r"cannot pool .* Normal or LogNormal") as refused:
            _fit(runs, law, **options)
        return Case(law, "groups", refused=refused.value)
    return _render(Case(law, "groups", _fit(runs, law, **options)))


CASES = [(law, g) for law in LAWS for g in GROUPS] + [(law, "run_id") for law in CURVE_LAWS]


def _id(case) -> str:
    law, g = case
    return f"{law}-{g if g == 'run_id' else f'{g}groups' if g else 'pooled'}"


@pytest.fixture(scope="module", params=CASES, ids=[_id(c) for c in CASES])
def case(request, prior_sampler) -> Case:
    return make_case(*request.param)


def expected_captions(case: Case) -> list[str]:
    """The figures the report must draw for this kind of fit (start of each caption)."""
    inputs = get_law(case.law).inputs
    if case.kind == "run_id":
        out = ["learning curves and extrapolation bands"]
    elif case.kind == "groups":
        out = [f"loss against {x} by family, with the band of a new group" for x in inputs]
    else:
        out = [f"runs, posterior-mean law and 50%/94% bands against {x}" for x in inputs]
        if set(inputs) == {"N", "D"}:
            out += ["overfitting penalty over (N, D)", "compute-optimal frontier"]
    if len(inputs) == 1 and inputs[0] in TARGETS:
        out.append("predictive fan")  # at the asked N or C
    return [*out, RANK, PAIR, *([PRIOR] if "prior" in case.fit.tree.children else [])]


def test_every_figure_is_drawn_with_alt_text(case):
    if case.refused is not None:
        assert case.kind == "groups" and "partial pooling needs" in str(case.refused)
        return
    html = case.html
    assert "not drawn" not in html
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    wanted = expected_captions(case)
    assert len(captions) == len(wanted)
    for caption, start in zip(sorted(captions), sorted(wanted), strict=True):
        assert caption.startswith(start)
    images = _images(html)
    assert len(images) == len(captions) == html.count("<img") == len(case.panels)
    assert all(im.format == "PNG" and min(im.size) > 100 for im in images)
    alts = ALT.findall(html)
    assert len(alts) == len(DATA_URI.findall(html))
    assert all(alt.strip() for alt in alts)


def test_no_figure_has_too_many_panels(case):
    if case.refused is not None:
        return  # asserted in test_every_figure_is_drawn_with_alt_text
    assert max(case.panels) <= MAX_PANELS
    # The pair plot has one panel per pair of quantities shown.
    shown = plots.diagnostic_params(case.fit, limit=plots.MAX_PAIR_PARAMS)
    assert len(shown) ** 2 in case.panels


def test_diagnostic_figures_show_population_quantities_first(case):
    if case.refused is not None:
        return
    fit, html = case.fit, case.html
    post = fit.posterior
    every = plots.diagnostic_params(fit)
    assert every, "nothing to plot"
    limits = {PAIR: plots.MAX_PAIR_PARAMS, RANK: plots.MAX_PANEL_PARAMS}
    if "prior" in fit.tree.children:
        limits[PRIOR] = plots.MAX_PANEL_PARAMS
    for caption, limit in limits.items():
        (alt,) = [a for a in ALT.findall(html) if a.startswith(f"{caption}: ")]
        shown = alt.removeprefix(f"{caption}: ").split(", ")
        assert shown == every[:limit]
        # The caption says when quantities are left out (they are all in the table).
        note = f"<figcaption>{caption}; {len(shown)} of {len(every)} quantities"
        assert (note in html) == (len(shown) < len(every))
    assert all(post[n].dims == ("chain", "draw") for n in every)

    def rank(name: str) -> int:  # paper parameter or population location, noise, scale
        return 2 if name.startswith("tau_") else 1 if name == "sigma" else 0

    assert [rank(n) for n in every] == sorted(rank(n) for n in every)
    if case.kind == "groups":
        dim = fit.pooling.dim
        assert not any(dim in post[n].dims for n in every)
        varying = [k for k in fit.law.latents if fit.pooling.varies(k)]
        # Each varying latent's population location and scale is there, once.
        assert sum(n.startswith("mu_") for n in every) == len(varying)
        assert sum(n.startswith("tau_") for n in every) == len(varying)
        # ...while the table still lists every group's values.
        assert f"[{fit.pooling.labels[-1]}]</td>" in html


def test_a_legend_names_groups_only_while_colours_tell_them_apart(prior_sampler):
    (ax,) = plots.plot_groups(make_case("power_n", 20).fit).axes
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "runs of the 20 groups" in texts
    assert not any(t.startswith("g0") for t in texts)
    assert "(20 groups)" in ax.get_title()


def test_one_chain_reports_without_rank_plots():
    runs = ladder("power_n", 0)
    fit = bs.fit(runs, "power_n", sampler="exact", chains=1, draws=50)
    html = bayescale.report.build_report({"one": fit})
    assert f"{RANK}: not drawn (rank plots compare chains" in html
    assert PAIR in html
    # An explicit list longer than the pair plot takes is refused before ArviZ sees it.
    too_many = ["alpha_N"] * (plots.MAX_PAIR_PARAMS + 1)
    with pytest.raises(ConfigError, match=f"at most {plots.MAX_PAIR_PARAMS} quantities"):
        plots.plot_pair(fit, var_names=too_many)


def test_cli_reports_a_hierarchical_chinchilla_fit(tmp_path, prior_sampler):
    """The reported crash, through ``bayescale report``: a 2-group Chinchilla fit, saved.

    Before the fix this exited 1 with "Requested 144 subplots" (as it did for a real nutpie fit
    of the same runs, 2 chains x 50 draws, checked by hand: that fit's model takes ~20 s to
    compile cold, so the suite uses the prior-draw fit, whose variables are the same).
    """
    fit = make_case("chinchilla", 2).fit
    path = fit.save(tmp_path / "chinchilla_groups.nc")
    out = tmp_path / "report.html"
    argv = ["report", str(path), "--N", "1e10", "--C", "1e22", "-o", str(out)]
    assert main(argv) == 0
    html = out.read_text(encoding="utf-8")
    assert "not drawn" not in html
    shown = plots.diagnostic_params(fit, limit=plots.MAX_PAIR_PARAMS)
    assert f'alt="{PAIR}: {", ".join(shown)}"' in html
    # E is shared; A, B, alpha and beta vary: their 4 locations and 4 scales, and sigma.
    assert len(plots.diagnostic_params(fit)) == 10
    assert f"<figcaption>{PAIR}; 6 of 10 quantities" in html
