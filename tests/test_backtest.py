"""Leave-largest-out backtests, the interval score, the lack-of-fit check, and the command.

Simulated ladders use ``power_n`` with ``sampler="exact"`` so backtests over many ladders take
seconds; the OLMo ladder in ``../shared/data`` checks the lack-of-fit diagnostic on real runs.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import needs_shared_data, rng, seeded, simulate
from test_readers import OLMO, OLMO_DIR

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError, RunsTableError
from bayescale.questions.backtest import backtest, interval_score, lack_of_fit
from bayescale.runs.table import load_runs

KAPLAN_N = {"alpha_N": 0.076, "N_c": 8.8e13}
CURVED = {"E": 1.7, "alpha_N": 0.3, "N_c": 3e7}
EXACT = {"sampler": "exact", "draws": 1000, "chains": 2}


def ladder(seed: int, n_runs: int = 20, noise: float = 0.01) -> pd.DataFrame:
    n = np.exp(rng(seed).uniform(np.log(1e6), np.log(1e10), n_runs))
    return simulate("power_n", KAPLAN_N, {"N": n}, noise, seed + 1)


# --------------------------------------------------------------------------------------------
# The interval score.


def test_interval_score_is_width_inside_and_penalises_misses_by_distance():
    lo, hi, prob = 2.0, 3.0, 0.9
    assert interval_score(lo, hi, 2.5, prob) == pytest.approx(1.0)
    assert interval_score(lo, hi, 2.0, prob) == pytest.approx(1.0)
    # alpha = 0.1: a miss by d costs 2 d / alpha = 20 d on top of the width.
    assert interval_score(lo, hi, 1.9, prob) == pytest.approx(1.0 + 20 * 0.1)
    assert interval_score(lo, hi, 3.5, prob) == pytest.approx(1.0 + 20 * 0.5)
    np.testing.assert_allclose(
        interval_score([lo, lo], [hi, hi], [2.5, 4.0], prob), [1.0, 1.0 + 20.0]
    )


def test_interval_score_is_minimised_by_the_true_quantiles():
    """Proper: among intervals [q(a), q(1-a)] of scaled normals, the true scale scores best."""
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 50_000)
    from scipy import stats

    z = stats.norm.ppf(0.97)
    scores = {s: interval_score(-z * s, z * s, y, 0.94).mean() for s in (0.7, 1.0, 1.4)}
    assert scores[1.0] < scores[0.7] and scores[1.0] < scores[1.4]


# --------------------------------------------------------------------------------------------
# Backtests on simulated ladders.


def test_backtest_holds_out_the_largest_runs_and_scores_them():
    runs = ladder(seed=0)
    result = backtest(runs, "power_n", holdout_top=4, seed=1, **EXACT)
    largest = np.sort(np.argsort(runs["N"].to_numpy())[-4:])
    assert list(result.held_out.index) == list(largest)
    assert result.fit.n_runs == 16
    assert float(result.fit.runs["N"].max()) < float(result.held_out["N"].min())
    h = result.held_out
    assert (h["inside"] == ((h["lo"] <= h["loss"]) & (h["loss"] <= h["hi"]))).all()
    np.testing.assert_allclose(h["width"], h["hi"] - h["lo"])
    np.testing.assert_allclose(
        h["interval_score"], interval_score(h["lo"], h["hi"], h["loss"], 0.94)
    )
    assert (h["extrapolation_N"] >= 0).all() and np.isfinite(h["log_score"]).all()
    t = result.totals
    assert t["n_held_out"] == 4 and t["n_fit"] == 16
    assert t["coverage"] == pytest.approx(h["inside"].mean())
    assert t["mean_interval_score"] == pytest.approx(h["interval_score"].mean())
    doc = result.to_dict()
    json.dumps(doc)
    assert doc["holdout_top"] == 4 and len(doc["runs"]) == 4 and doc["discrepancy"] is None


@pytest.mark.statistical
def test_backtest_coverage_is_near_nominal_over_many_ladders():
    """60 ladders x 3 held-out runs, each up to half a decade beyond the fitted ones.

    Calibrated 94 % bands cover 169 of the 180 runs on average (binomial sd 3.2), so under
    85 % (153) is 5 sds out, and covering all 180 has probability 0.94^180 = 1.4e-5, while
    bands twice too wide (99.9 %) cover all of them 83 % of the time. (With 30 ladders the
    upper bound failed calibrated bands 0.94^90 = 0.4 % of the time.)
    """
    inside = []
    for i in range(60):
        result = backtest(ladder(seed=10 + i), "power_n", holdout_top=3, seed=seeded(i), **EXACT)
        inside += result.held_out["inside"].tolist()
    assert 0.85 <= np.mean(inside) < 1.0


@pytest.mark.statistical
def test_backtest_scores_a_wrong_law_worse():
    """On a curved ladder a pure power law misses the largest runs; the right shape does not."""
    n = np.geomspace(1e6, 1e10, 16)
    runs = simulate("power_n_e", CURVED, {"N": n}, 0.005, 4)
    wrong = backtest(runs, "power_n", holdout_top=3, seed=seeded(0), **EXACT)
    jitter = np.exp(rng(3).uniform(-0.1, 0.1, 16))
    flat = simulate("power_n", KAPLAN_N, {"N": n * jitter}, 0.005, 4)
    right = backtest(flat, "power_n", holdout_top=3, seed=seeded(0), **EXACT)
    assert wrong.totals["coverage"] < right.totals["coverage"]
    assert wrong.totals["mean_interval_score"] > 3 * right.totals["mean_interval_score"]
    assert wrong.totals["mean_log_score"] < right.totals["mean_log_score"]


def test_ties_in_by_are_broken_by_the_law_inputs_largest_first():
    n = np.array([1e8, 1e8, 1e8, 1e7, 1e7, 1e7, 1e6, 1e6])
    d = np.array([1e9, 4e9, 2e9, 1e9, 4e9, 2e9, 1e9, 4e9])
    runs = simulate("power_d", {"alpha_D": 0.095, "D_c": 5.4e13}, {"D": d}, 0.01, 0)
    runs["N"] = n
    result = backtest(runs, "power_d", holdout_top=2, by="N", **EXACT)
    assert list(result.held_out.index) == [1, 2]  # N = 1e8 with the most tokens
    assert sorted(result.held_out["D"]) == [2e9, 4e9]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"holdout_top": 20}, ConfigError, r"holdout_top must be a whole number from 1 to 19"),
        ({"holdout_top": 0}, ConfigError, r"holdout_top"),
        ({"holdout_top": 2, "by": "batch"}, RunsTableError, r"cannot rank runs by 'batch'"),
        ({"holdout_top": 2, "prob": 1.0}, ConfigError, r"prob"),
        ({"holdout_top": 18}, RunsTableError, r"needs at least 3 distinct N"),
    ],
    ids=["too-many", "zero", "unknown-by", "prob", "too-few-left"],
)
def test_backtest_errors(options, error, match):
    with pytest.raises(error, match=match):
        backtest(ladder(seed=1), "power_n", **options, **EXACT)


# --------------------------------------------------------------------------------------------
# Lack of fit: residual scatter against replicate scatter.


def replicated(law: str, params: dict, seed: int, noise: float = 0.002):
    n = np.repeat(np.geomspace(1e6, 1e10, 8), 2)
    frame = simulate(law, params, {"N": n}, noise, seed)
    return load_runs(frame, allow_replicates=True)


@pytest.mark.statistical
def test_lack_of_fit_is_not_flagged_when_the_law_is_right():
    flagged = []
    for seed in range(20):
        fit = bs.fit(replicated("power_n", KAPLAN_N, seed), "power_n", seed=seeded(seed), **EXACT)
        result = lack_of_fit(fit)
        assert result.n_replicate_sets == 8 and result.n_points == 8 and result.n_runs == 16
        flagged.append(result.lack_of_fit)
    # Nominal false-alarm rate 1 %: 4 or more of 20 has probability 4e-5.
    assert sum(flagged) <= 3


@pytest.mark.statistical
def test_lack_of_fit_is_flagged_when_the_law_misses_the_curve():
    fit = bs.fit(replicated("power_n_e", CURVED, 0), "power_n", seed=seeded(0), **EXACT)
    result = lack_of_fit(fit)
    assert result.lack_of_fit and result.p_value < 1e-6
    assert result.ratio > 3
    assert "misses the runs by more than their noise" in result.message
    # The simulated 0.2 % rerun scatter, measured from 8 pairs: 8 (s / 0.002)^2 ~ chi2(8),
    # outside (0.0004, 0.005) with probability 2e-5.
    assert 0.0004 < result.replicate_sd < 0.005


def test_lack_of_fit_without_replicates_says_so():
    result = lack_of_fit(bs.fit(ladder(seed=2), "power_n", **EXACT))
    assert result.replicate_sd is None and result.p_value is None and result.lack_of_fit is None
    assert "no replicate runs" in result.message


@needs_shared_data
def test_olmo_ladder_misfit_is_far_above_rerun_scatter():
    """Issue 5: on a real ladder the scatter around the law dwarfs the scatter of reruns."""
    runs = load_runs(OLMO_DIR, allow_replicates=True, **OLMO)
    fit = bs.fit(runs, "kaplan_nd", draws=500, tune=500, chains=2, seed=1)
    result = lack_of_fit(fit)
    assert result.n_runs == 24 and result.n_replicate_sets == 4 and result.n_points == 20
    assert result.replicate_sd < 0.001  # reruns agree to better than 0.1 %
    assert result.ratio > 5 and result.lack_of_fit


# --------------------------------------------------------------------------------------------
# The ``backtest`` command.


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("backtest") / "runs.csv"
    ladder(seed=5).rename(columns={"N": "params", "loss": "val_loss"}).to_csv(path, index=False)
    return path


def test_cli_json(runs_csv, capsys):
    code, out, err = run_cli(
        capsys,
        "backtest",
        str(runs_csv),
        "--law",
        "power_n",
        "--holdout-top",
        "3",
        "--columns",
        "N=params,loss=val_loss",
        "--sampler",
        "exact",
        "--json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert {
        "law",
        "by",
        "holdout_top",
        "prob",
        "discrepancy",
        "runs",
        "totals",
        "lack_of_fit",
    } <= set(doc)
    assert doc["holdout_top"] == 3 and doc["by"] == "N" and len(doc["runs"]) == 3
    for row in doc["runs"]:
        assert {
            "run",
            "N",
            "loss",
            "lo",
            "hi",
            "inside",
            "width",
            "interval_score",
            "log_score",
            "extrapolation_N",
        } <= set(row)
    assert set(doc["totals"]) == {
        "n_held_out",
        "n_fit",
        "coverage",
        "mean_width",
        "mean_interval_score",
        "mean_log_score",
    }


@pytest.fixture(scope="module")
def split_csv(tmp_path_factory):
    """The ladder with its own split column: the 4 largest runs have ``Training`` 0."""
    frame = ladder(seed=5)
    frame["Training"] = (frame["N"].rank(ascending=False) > 4).astype(int)
    path = tmp_path_factory.mktemp("backtest") / "split.csv"
    frame.to_csv(path, index=False)
    return path, frame


def held_out_json(capsys, path, *argv):
    code, out, err = run_cli(
        capsys, "backtest", str(path), "--law", "power_n", "--holdout", "Training=0", *argv
    )
    assert code == 0, err
    return json.loads(out)


def test_cli_holdout_column_and_least_squares_baseline(split_csv, capsys):
    path, frame = split_csv
    held = frame.loc[frame["Training"] == 0, "N"].sort_values().to_numpy()
    bayes = held_out_json(capsys, path, "--sampler", "exact", "--json")
    baseline = held_out_json(
        capsys, path, "--baseline", "least-squares", "--bootstrap", "100", "--json"
    )
    for doc in (bayes, baseline):
        assert {"law", "method", "runs", "totals", "lack_of_fit"} <= set(doc)
        np.testing.assert_allclose(sorted(r["N"] for r in doc["runs"]), held)
        assert doc["totals"]["n_fit"] == 16 and doc["totals"]["n_held_out"] == 4
        for row in doc["runs"]:
            assert row["lo"] < row["loss_mean"] < row["hi"]
            assert row["inside"] == (row["lo"] <= row["loss"] <= row["hi"])
    assert bayes["method"] is None and bayes["lack_of_fit"] is not None
    assert baseline["method"] == "fit_least_squares" and baseline["lack_of_fit"] is None
    # The same law fitted to the same 16 runs (1 % noise): the Huber optimum's bootstrap and
    # the exact posterior predict the held-out runs alike, far closer than the band widths.
    mean = {
        doc["method"]: np.array([r["loss_mean"] for r in doc["runs"]]) for doc in (bayes, baseline)
    }
    np.testing.assert_allclose(mean["fit_least_squares"], mean[None], rtol=0.01)
    widths = [r["width"] for r in baseline["runs"]]
    assert all(0 < w < 0.5 for w in widths)


def test_cli_holdout_text_output_of_the_baseline(split_csv, capsys):
    path, _ = split_csv
    code, out, err = run_cli(
        capsys,
        "backtest",
        str(path),
        "--law",
        "power_n",
        "--holdout",
        "Training=0",
        "--baseline",
        "least-squares",
        "--bootstrap",
        "50",
    )
    assert code == 0, err
    assert "with the least-squares baseline" in err and "Training=0" in err
    assert "of 4 held-out runs" in out and "(fitted on 16)" in out
    assert "lack of fit" not in out


@needs_shared_data
def test_cli_text_reads_olmo_with_reader_options(capsys):
    reader = [
        "--file-pattern",
        OLMO["file_pattern"],
        "--value-map",
        json.dumps(OLMO["value_map"]),
        "--columns",
        ",".join(f"{k}={v}" for k, v in OLMO["columns"].items()),
        "--last-per-run",
        "source_file",
    ]
    code, out, err = run_cli(
        capsys,
        "backtest",
        str(OLMO_DIR),
        "--law",
        "power_d",
        "--holdout-top",
        "4",
        "--by",
        "D",
        "--sampler",
        "exact",
        *reader,
    )
    assert code == 0, err
    assert "coverage" in out and "of 4 held-out runs" in out and "(fitted on 20)" in out
    assert "lack of fit:" in out and "replicate scatter" in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--holdout-top", "20"], r"holdout_top must be a whole number from 1 to 19"),
        (["--holdout-top", "2", "--by", "nope"], r"cannot rank runs by 'nope'"),
        (["--holdout-top", "2", "--value-map", "{oops"], r"--value-map is not valid JSON"),
        (["--holdout-top", "2", "--value-map", "missing.json"], r"neither JSON text nor"),
        (["--holdout-top", "2", "--file-pattern", "(?P<x>a)"], r"file or a directory|match"),
        (["--holdout-top", "2", "--sampler", "exact", "--discrepancy", "gp"], r"exact sampler"),
        (["--holdout", "params"], r"--holdout must be COL=VALUE"),
        (["--holdout", "=1"], r"--holdout must be COL=VALUE"),
        (["--holdout", "split=1"], r"holdout column 'split' is not in the runs table"),
        (["--holdout", "params=1", "--holdout-top", "2"], r"exactly one of --holdout-top"),
        ([], r"exactly one of --holdout-top K and --holdout COL=VALUE"),
        (["--holdout-top", "2", "--baseline", "least-square"], r"unknown baseline.*least-squares"),
        (
            ["--holdout-top", "2", "--baseline", "least-squares", "--discrepancy", "distance"],
            r"--discrepancy: not used by --baseline least-squares",
        ),
    ],
    ids=[
        "too-many",
        "by",
        "value-map-json",
        "value-map-file",
        "pattern",
        "exact-gp",
        "holdout-syntax",
        "holdout-no-column",
        "holdout-unknown-column",
        "both-holdouts",
        "no-holdout",
        "unknown-baseline",
        "baseline-with-model-option",
    ],
)
def test_cli_bad_input_exits_2_with_one_line(runs_csv, capsys, argv, match):
    code, out, err = run_cli(
        capsys,
        "backtest",
        str(runs_csv),
        "--law",
        "power_n",
        "--columns",
        "N=params,loss=val_loss",
        *argv,
    )
    assert code == 2 and out == ""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("backtest of")]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(match, lines[0]), lines[0]


def test_cli_needs_a_law_for_a_file(runs_csv, capsys):
    code, _, err = run_cli(capsys, "backtest", str(runs_csv), "--holdout-top", "2")
    assert code == 2 and "--law is required" in err
