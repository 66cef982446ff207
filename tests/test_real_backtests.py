"""Backtests on the public tables in ``../shared/data``, against the least-squares baseline.

The scoring helpers (a given held-out split, a baseline ``method``, scores from predictive
draws) are checked first on simulated ladders; then bayescale and the least-squares bootstrap
(:mod:`bayescale.fitting.leastsq`) are backtested on one Gemstones split and on the 5 LM + 5 NMT
learning curves of Revisiting-NSL, with reduced draws, and held to coverage floors justified
next to each assertion. ``benchmarks/backtest_real.py`` runs every table and split in full.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, needs_shared_data, rng, seeded, simulate
from scipy import stats

from bayescale.core.errors import ConfigError, RunsTableError, SamplingWarning
from bayescale.fitting.leastsq import fit_least_squares
from bayescale.questions.backtest import backtest, interval_score, score_draws

GEMSTONES = SHARED_DATA / "gemstones" / "wandb_df_for_fitting_cool_end.jsonl"
RNSL = SHARED_DATA / "revisiting-nsl-benchmark" / "benchmark.lang.csv"
PROB = 0.94
SAMPLING = {"draws": 500, "tune": 500, "chains": 2}
BOOTSTRAP = {"n_bootstrap": 200}
EXACT = {"sampler": "exact", "draws": 1000, "chains": 2}
KAPLAN_N = {"alpha_N": 0.076, "N_c": 8.8e13}


@contextmanager
def reduced_draws():
    """Real-data fits with 2 x 500 draws: diagnostics may warn (e.g. R-hat 1.01), and the
    tests here judge the predictions, not the chains, so sampling warnings are let pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        yield


def ladder(seed: int, n_runs: int = 20) -> pd.DataFrame:
    n = np.exp(rng(seed).uniform(np.log(1e6), np.log(1e10), n_runs))
    return simulate("power_n", KAPLAN_N, {"N": n}, 0.01, seed + 1)


# --------------------------------------------------------------------------------------------
# Scoring from draws, a given split, a baseline method.


@pytest.mark.statistical
def test_score_draws_matches_the_exact_interval_and_density_of_a_lognormal():
    """Draws of a known log-normal: HDI ~ its quantiles, log score ~ its exact density."""
    mu, sd = np.log([3.0, 2.0, 2.5]), 0.02
    # 200,000 draws: an HDI bound estimated from 20,000 strayed 0.26 % from the quantile in
    # one seed of five, past the 0.2 % tolerance.
    draws = np.exp(rng(0).normal(mu[:, None], sd, (3, 200_000)))
    y = np.array([3.0, 2.0 * np.exp(3 * sd), 2.0])
    scores = score_draws(draws, y, PROB)
    assert scores["inside"].tolist() == [True, False, False]
    z = stats.norm.ppf(0.97)
    # A log-normal this narrow is nearly symmetric, so its HDI is its central interval.
    np.testing.assert_allclose(scores["lo"], np.exp(mu - z * sd), rtol=2e-3)
    np.testing.assert_allclose(scores["hi"], np.exp(mu + z * sd), rtol=2e-3)
    exact = stats.norm.logpdf(np.log(y), mu, sd) - np.log(y)
    # Monte Carlo error of the draws' sd (relative sqrt(1/2n) = 0.16 %) moves the log density
    # at z predictive sds away by about z^2 x 0.16 %: ~0.2 nats at the 11-sd miss.
    np.testing.assert_allclose(scores["log_score"], exact, rtol=0.02, atol=0.1)
    np.testing.assert_allclose(
        scores["interval_score"], interval_score(scores["lo"], scores["hi"], y, PROB)
    )


def test_score_draws_rejects_misshapen_or_bad_draws():
    with pytest.raises(ConfigError, match=r"shape \(point, n\)"):
        score_draws(np.ones((2, 10)), [1.0, 2.0, 3.0], PROB)
    with pytest.raises(ConfigError, match="positive and finite"):
        score_draws(-np.ones((1, 10)), [1.0], PROB)


def test_holdout_by_column_value_or_mask_holds_out_exactly_those_runs():
    runs = ladder(seed=0)
    runs["split"] = np.where(np.arange(20) % 5 == 0, "test", "train")
    by_column = backtest(runs, "power_n", holdout={"split": "test"}, **EXACT)
    assert list(by_column.held_out.index) == [0, 5, 10, 15]
    assert by_column.totals["n_fit"] == 16 and by_column.fit.n_runs == 16
    assert by_column.to_dict()["runs"][0]["run"] == 0
    mask = np.arange(20) >= 17
    by_mask = backtest(runs, "power_n", holdout=mask, **EXACT)
    assert list(by_mask.held_out.index) == [17, 18, 19]
    # Interpolated runs are inside the fitted range: no extrapolation.
    assert (by_column.held_out["extrapolation_N"].abs() < 1).all()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({}, ConfigError, "exactly one of holdout_top"),
        ({"holdout_top": 2, "holdout": {"split": "test"}}, ConfigError, "exactly one"),
        ({"holdout": {"nope": 1}}, RunsTableError, "holdout column 'nope'"),
        ({"holdout": {"split": "never"}}, ConfigError, "selects 0 of 20 runs"),
        ({"holdout": np.ones(20, bool)}, ConfigError, "selects 20 of 20 runs"),
        ({"holdout": np.ones(3, bool)}, ConfigError, "20 booleans"),
    ],
    ids=["neither", "both", "unknown-column", "empty", "all", "mask-shape"],
)
def test_holdout_errors(options, error, match):
    runs = ladder(seed=1).assign(split="train")
    with pytest.raises(error, match=match):
        backtest(runs, "power_n", **options, **EXACT)


def test_a_baseline_method_is_fitted_on_the_kept_runs_and_scored_from_its_draws():
    """The hook sees only the kept runs; its draws are scored exactly as score_draws does."""
    seen = {}

    class Constant:
        def predictive_draws(self, inputs, *, n, seed):
            rng = np.random.default_rng(seed)
            return np.exp(rng.normal(np.log(3.0), 0.05, (len(inputs["N"]), n)))

    def constant(runs, law, *, seed, scale):
        seen.update(n_runs=int(runs.sizes["run"]), largest=float(runs["N"].max()), scale=scale)
        return Constant()

    runs = ladder(seed=2)
    result = backtest(runs, "power_n", holdout_top=4, method=constant, scale=2.0, n_draws=500)
    held = result.held_out
    assert seen == {"n_runs": 16, "largest": float(np.sort(runs["N"])[-5]), "scale": 2.0}
    assert result.lack_of_fit is None and result.settings["method"] == "constant"
    expected = score_draws(
        Constant().predictive_draws({"N": held["N"]}, n=500, seed=0), held["loss"], PROB
    )
    np.testing.assert_allclose(held["interval_score"], expected["interval_score"])
    assert (held["extrapolation_N"] > 0).all()
    assert result.to_dict()["method"] == "constant" and result.totals["n_fit"] == 16


@pytest.mark.statistical
def test_least_squares_baseline_runs_through_the_same_backtest():
    runs = ladder(seed=3)
    bayes = backtest(runs, "power_n", holdout_top=4, seed=seeded(0), **EXACT)
    lsq = backtest(
        runs, "power_n", holdout_top=4, method=fit_least_squares, seed=seeded(0), **BOOTSTRAP
    )
    assert list(lsq.held_out.index) == list(bayes.held_out.index)
    np.testing.assert_allclose(lsq.held_out["loss"], bayes.held_out["loss"])
    # Same law, same runs: the two point predictions agree to well within the 1 % noise.
    np.testing.assert_allclose(lsq.held_out["loss_mean"], bayes.held_out["loss_mean"], rtol=5e-3)


# --------------------------------------------------------------------------------------------
# Real tables: bayescale against the least-squares bootstrap.


def gemstones() -> pd.DataFrame:
    """Gemstones annealed end points with NON-embedding N (vocabulary 50304 x width)."""
    frame = pd.read_json(GEMSTONES, lines=True)
    frame["params_nonembedding"] = frame["params_active_precise"] - 50304 * frame["width"]
    return frame


GEM_COLUMNS = {"N": "params_nonembedding", "D": "tokens", "loss": "final_loss"}


@pytest.fixture(scope="module")
def gemstones_largest_models():
    """Chinchilla on 17 models x 10 token counts; the 3 largest (10 + 10 + 9 points) held out."""
    frame = gemstones()
    split = {"holdout_top": 29, "by": "N", "columns": GEM_COLUMNS, "seed": seeded(0)}
    with reduced_draws():
        bayes = backtest(frame, "chinchilla", **split, **SAMPLING)
    lsq = backtest(frame, "chinchilla", method=fit_least_squares, **split, **BOOTSTRAP)
    return bayes, lsq


@needs_shared_data
def test_gemstones_holds_out_the_three_largest_models(gemstones_largest_models):
    bayes, lsq = gemstones_largest_models
    held = bayes.held_out
    assert held["N"].nunique() == 3 and len(held) == 29
    assert held["N"].min() > 1.7e9 > bayes.fit.runs["N"].max()
    assert list(lsq.held_out.index) == list(held.index)


@needs_shared_data
@pytest.mark.statistical
def test_gemstones_largest_models_coverage_floor(gemstones_largest_models):
    """At most one of the three held-out models may fall outside the bands.

    Misses of one model's points are not independent: they share its extrapolation error, so
    in the worst case a model's 10 points are covered or missed together. With nominal 0.94,
    calibrated bands then miss two or more of the 3 models with probability
    3 x 0.06^2 x 0.94 + 0.06^3 = 1.0 %; so coverage below 1 - 10/29 = 0.655 shows
    miscalibration at the 1 % level. (The full run measures 0.90 for bayescale here.)
    """
    bayes, lsq = gemstones_largest_models
    assert bayes.totals["coverage"] >= 0.655
    assert lsq.totals["coverage"] >= 0.655


@needs_shared_data
@pytest.mark.statistical
def test_gemstones_interval_score_against_least_squares(gemstones_largest_models):
    """Honest result: on this split bayescale's interval score is about 1.5x the bootstrap's.

    Both bands are about as wide; bayescale's misses on the largest model cost it the
    difference. The assertion bounds that gap (2x), so a regression that widens it fails.
    """
    bayes, lsq = gemstones_largest_models
    ratio = bayes.totals["mean_interval_score"] / lsq.totals["mean_interval_score"]
    assert ratio < 2.0
    assert bayes.totals["mean_width"] < 2 * lsq.totals["mean_width"]


def rnsl_curves(domains: tuple[str, ...]) -> dict[tuple[str, str], pd.DataFrame]:
    """Revisiting-NSL learning curves (exact duplicate rows dropped), one per (Task, Model)."""
    frame = pd.read_csv(RNSL).drop_duplicates()
    frame = frame[frame["Domain"].isin(domains)]
    return {
        (str(domain), str(model)): curve.reset_index(drop=True)
        for (domain, model), curve in frame.groupby(["Domain", "Model"], sort=True)
    }


@pytest.fixture(scope="module")
def rnsl_lm_nmt():
    """power_d_e per curve on the authors' split (Training == 1 fitted, 0 held out)."""
    options = {"holdout": {"Training": 0}, "by": "D", "seed": seeded(0)}
    options["columns"] = {"D": "Seen Examples", "loss": "Loss"}
    # More draws and resamples than elsewhere: NMT's score rests on single held-out points
    # near a band's edge, where an interval score is 33x the miss. With 2 x 500 draws and 200
    # resamples the NMT ratio ranged 0.86-1.21 over 20 seeds; with these, 0.95-1.07 on the
    # six worst of them. Each fit takes under a second.
    sampling = {"draws": 2000, "tune": 1000, "chains": 2}
    out = {}
    for key, curve in rnsl_curves(("LM", "NMT")).items():
        with reduced_draws():
            bayes = backtest(curve, "power_d_e", **options, **sampling)
        lsq = backtest(curve, "power_d_e", method=fit_least_squares, **options, n_bootstrap=1000)
        out[key] = (bayes, lsq)
    return out


@needs_shared_data
def test_rnsl_has_ten_curves_split_as_the_authors_did(rnsl_lm_nmt):
    assert sorted({domain for domain, _ in rnsl_lm_nmt}) == ["LM", "NMT"]
    assert len(rnsl_lm_nmt) == 10
    for bayes, _ in rnsl_lm_nmt.values():
        # The held-out tail lies beyond every fitted point of its curve.
        assert bayes.held_out["D"].min() > bayes.fit.runs["D"].max()


@needs_shared_data
@pytest.mark.statistical
def test_rnsl_curves_coverage_floor(rnsl_lm_nmt):
    """At most 3 of the 10 curves may have most of their held-out tail outside the bands.

    A curve's tail points share its extrapolation error, so count curves, not points: in the
    worst case a tail is covered or missed as a block, with probability 0.06 each under
    calibrated 94 % bands. The number of missed curves is then Binomial(10, 0.06), and
    P(>= 4) = 0.2 %: four or more curves mostly outside their bands shows miscalibration.
    (The full run has one: the single held-out point of one NMT curve.)
    """
    for method in (0, 1):
        missed = sum(pair[method].totals["coverage"] < 0.5 for pair in rnsl_lm_nmt.values())
        assert missed <= 3


@needs_shared_data
@pytest.mark.statistical
@pytest.mark.parametrize("domain", ["LM", "NMT"])
def test_rnsl_interval_score_is_on_par_with_least_squares(rnsl_lm_nmt, domain):
    """Honest result: per domain, bayescale and the bootstrap score within 2 % of each other.

    Per held-out point, pooled over the domain's curves (the full run: LM 0.0032 vs 0.0032,
    NMT 0.056 vs 0.056 nats). The margin, 25 %, is over twice the seed-to-seed spread.
    """
    pairs = [pair for (d, _), pair in rnsl_lm_nmt.items() if d == domain]
    scores = [
        np.concatenate([p[k].held_out["interval_score"].to_numpy() for p in pairs]).mean()
        for k in (0, 1)
    ]
    assert scores[0] <= 1.25 * scores[1]


# --------------------------------------------------------------------------------------------
# OLMo ladder: the 1.3B runs predicted from 190M-760M.


@pytest.fixture(scope="module")
def olmo_largest_size():
    """kaplan_nd on the C4 losses of the 18 runs of 190M-760M; the 6 runs of 1.3B held out."""
    from test_readers import OLMO, OLMO_DIR

    split = {"holdout_top": 6, "by": "N", "seed": seeded(0), **OLMO}
    with reduced_draws():
        bayes = backtest(OLMO_DIR, "kaplan_nd", **split, **SAMPLING)
    lsq = backtest(OLMO_DIR, "kaplan_nd", method=fit_least_squares, **split, **BOOTSTRAP)
    return bayes, lsq


@needs_shared_data
@pytest.mark.statistical
def test_olmo_largest_size_coverage_floor(olmo_largest_size):
    """At least 4 of the 6 held-out 1.3B runs inside the 94 % bands.

    The 6 runs (0.5-10x Chinchilla tokens, one rerun) share one model size, so their misses are
    correlated through the extrapolation in N; if they were independent, calibrated bands would
    miss 3 or more with probability 20 x 0.06^3 x 0.94^3 + ... = 0.4 %, and correlation only
    makes "all covered" and "many missed" both likelier. The C4 residuals are 15x the rerun
    scatter (lack of fit, tests/test_backtest.py), which is why the floor is not higher; the
    full run (benchmarks/backtest_real.py) covers all 6 with bayescale.
    """
    bayes, lsq = olmo_largest_size
    held = bayes.held_out
    assert len(held) == 6 and held["N"].nunique() == 1 and held["N"].iloc[0] > 1.2e9
    assert bayes.totals["coverage"] >= 4 / 6
    assert lsq.totals["coverage"] >= 4 / 6
