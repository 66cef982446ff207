"""The command line: JSON output shapes, replicates and run ids as users' tables have them.

Bad input (one plain message, exit code 2, nothing written) is table-driven in
``tests/test_cli_bad_input.py``; here only the console script's own exit code is checked.
"""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayescale.cli.app import main
from bayescale.laws.base import evaluate

KAPLAN_N = {"alpha_N": 0.076, "N_c": 8.8e13}


def ladder(n=12, seed=0):
    rng = np.random.default_rng(seed)
    N = np.geomspace(1e6, 1e9, n)
    loss = evaluate("power_n", KAPLAN_N, {"N": N}) * np.exp(rng.normal(0, 0.01, n))
    return pd.DataFrame({"params": N, "tokens": np.full(n, 1e10), "val_loss": loss})


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    csv = path.parent / "runs.csv"
    ladder().to_csv(csv, index=False)
    code = main(
        [
            "fit",
            str(csv),
            "--law",
            "power_n",
            "--columns",
            "N=params,loss=val_loss",
            "--draws",
            "500",
            "--tune",
            "500",
            "--chains",
            "2",
            "--no-progress",
            "-o",
            str(path),
        ]
    )
    assert code == 0
    return path


def test_fit_then_summary_json_has_documented_shape(fit_file, capsys):
    code, out, _ = run_cli(capsys, "summary", str(fit_file), "--json", "--prob", "0.9")
    assert code == 0
    doc = json.loads(out)
    assert doc["law"] == "power_n"
    assert doc["n_runs"] == 12
    assert set(doc["params"]) == {"alpha_N", "N_c", "sigma"}
    for row in doc["params"].values():
        assert set(row) == {"mean", "sd", "hdi_low", "hdi_high", "r_hat", "ess_bulk"}
        assert row["hdi_low"] < row["mean"] < row["hdi_high"]
    assert set(doc["diagnostics"]) >= {"divergences", "max_r_hat", "min_ess_bulk"}
    lo, hi = doc["params"]["alpha_N"]["hdi_low"], doc["params"]["alpha_N"]["hdi_high"]
    assert lo < KAPLAN_N["alpha_N"] < hi


def test_summary_text_lists_parameters_and_diagnostics(fit_file, capsys):
    code, out, _ = run_cli(capsys, "summary", str(fit_file))
    assert code == 0
    assert "alpha_N" in out and "N_c" in out and "divergences: 0" in out
    assert "94% HDI low" in out


def test_datasets_list_and_show(capsys):
    code, out, _ = run_cli(capsys, "datasets", "list")
    assert code == 0
    assert "kaplan_ladder" in out
    code, out, _ = run_cli(capsys, "datasets", "show", "kaplan_ladder")
    assert code == 0
    info = json.loads(out)
    assert info["law"] == "kaplan_nd" and info["n_runs"] > 10


def write(tmp_path, df, name="runs.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_debug_shows_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bayescale", "--debug", "summary", str(tmp_path / "missing.nc")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "FitFileError" in result.stderr


def test_console_script_exit_code_is_2_for_bad_input(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bayescale", "summary", str(tmp_path / "missing.nc")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == f"error: fit file {str(tmp_path / 'missing.nc')!r} does not exist"
    )


def test_replicates_accepted_counted_and_used_by_lack_of_fit(tmp_path, capsys):
    base = ladder(8).rename(columns={"params": "N", "val_loss": "loss"})
    rerun = base.iloc[[1, 4, 6]].assign(loss=lambda f: f["loss"] * np.exp([0.004, -0.003, 0.002]))
    csv = write(tmp_path, pd.concat([base, rerun], ignore_index=True))
    out = tmp_path / "fit.nc"
    code, _, _ = run_cli(
        capsys, "fit", str(csv), "--law", "power_n", "--sampler", "exact", "-o", str(out)
    )
    assert code == 0
    code, text, _ = run_cli(capsys, "summary", str(out))
    assert code == 0
    assert "replicates: 6 runs in 3 sets of equal inputs (8 distinct input points)" in text
    assert "lack of fit: residual scatter" in text and "3 replicate sets" in text
    doc = json.loads(run_cli(capsys, "summary", str(out), "--json")[1])
    assert doc["replicates"] == {"n_points": 8, "n_sets": 3, "n_runs_in_sets": 6}
    assert doc["lack_of_fit"]["n_replicate_sets"] == 3
    # Refusing them is still possible, and says which rows.
    code, _, err = run_cli(
        capsys, "fit", str(csv), "--law", "power_n", "--no-replicates", "-o", str(out)
    )
    assert code == 2 and "duplicate runs: rows 2, 9" in err


def test_drop_copies_from_the_cli(tmp_path, capsys):
    base = ladder(8).rename(columns={"params": "N", "val_loss": "loss"})
    csv = write(tmp_path, pd.concat([base, base.iloc[[2]]], ignore_index=True))
    out = tmp_path / "fit.nc"
    argv = ("fit", str(csv), "--law", "power_n", "--sampler", "exact", "-o", str(out))
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "copied rows: rows 3, 9" in err and not out.exists()
    code, _, _ = run_cli(capsys, *argv, "--drop-copies")
    assert code == 0
    assert json.loads(run_cli(capsys, "summary", str(out), "--json")[1])["n_runs"] == 8


def test_checkpoint_table_with_a_run_column(tmp_path, capsys):
    # One row per checkpoint, run ids in a column named "run": the final row of each run is
    # found without naming the column, and "run" never collides with the run dimension.
    rows = []
    for k, n in enumerate(np.geomspace(1e6, 1e9, 8)):
        final = evaluate("power_n", KAPLAN_N, {"N": np.array([n])})[0]
        for step, extra in ((100, 0.5), (200, 0.2), (300, 0.0)):
            rows.append({"run": f"r{k}", "N": n, "step": step, "loss": final + extra})
    csv = write(tmp_path, pd.DataFrame(rows))
    out = tmp_path / "fit.nc"
    argv = ("fit", str(csv), "--law", "power_n", "--sampler", "exact", "-o", str(out))
    code, _, err = run_cli(capsys, *argv, "--last-per-run")
    assert code == 0, err
    from bayescale.fitting.result import load_fit

    runs = load_fit(out).runs
    assert runs["run_label"].values.tolist() == [f"r{k}" for k in range(8)]
    assert runs["step"].values.tolist() == [300.0] * 8
    code, _, _ = run_cli(capsys, *argv, "--last-per-run", "run")
    assert code == 0
