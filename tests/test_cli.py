"""The command line: JSON output shapes, and one plain message + exit code 2 for every bad input."""

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayescale.cli import main
from bayescale.laws import evaluate

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


def bad_tables():
    base = ladder().rename(columns={"params": "N", "val_loss": "loss"}).drop(columns="tokens")
    missing = base.drop(columns="N")
    nonpos = base.copy()
    nonpos.loc[2, "N"] = -5
    nan = base.copy()
    nan.loc[4, "loss"] = np.nan
    dup = pd.concat([base, base.iloc[[3]]], ignore_index=True)
    few = base.iloc[:2]
    text = base.astype({"N": object})
    text.loc[1, "N"] = "big"
    return {
        "missing column": (missing, r"no column 'N'"),
        "non-positive N": (nonpos, r"N.*row 3|row 3.*N"),
        "NaN loss": (nan, r"loss.*row 5|row 5.*loss"),
        "duplicate runs": (dup, r"duplicate"),
        "too few points": (few, r"at least 3"),
        "non-numeric": (text, r"'big'|big"),
    }


@pytest.mark.parametrize("case", list(bad_tables()), ids=list(bad_tables()))
def test_bad_runs_table_exits_2_with_message_and_writes_nothing(case, tmp_path, capsys):
    df, pattern = bad_tables()[case]
    csv = write(tmp_path, df)
    out = tmp_path / "fit.nc"
    code, _, err = run_cli(capsys, "fit", str(csv), "--law", "power_n", "-o", str(out))
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0])
    assert "Traceback" not in err

    assert re.search(pattern, err), err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [csv]  # no temp file either


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--law", "power_q"], r"unknown law 'power_q'.*power_n"),
        (["--columns", "N=params,oops"], r"column mapping .*oops"),
        (["--columns", "N=nope,loss=val_loss"], r"nope"),
        (["--sampler", "gibbs", "--columns", "N=params,loss=val_loss"], r"unknown sampler 'gibbs'"),
        (["--likelihood", "cauchy", "--columns", "N=params,loss=val_loss"], r"likelihood"),
    ],
    ids=[
        "unknown-law",
        "bad-columns-spec",
        "unknown-column",
        "unknown-sampler",
        "unknown-likelihood",
    ],
)
def test_bad_options_exit_2(argv, pattern, tmp_path, capsys):
    csv = write(tmp_path, ladder())
    out = tmp_path / "fit.nc"
    law = [] if "--law" in argv else ["--law", "power_n"]
    code, _, err = run_cli(capsys, "fit", str(csv), *law, *argv, "-o", str(out))
    assert code == 2

    assert re.search(pattern, err), err
    assert not out.exists()


def test_unknown_dataset_name_exits_2(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "fit", "no_such_ladder", "--law", "power_n", "-o", str(tmp_path / "f.nc")
    )
    assert code == 2
    assert "no_such_ladder" in err


def test_missing_output_directory_exits_2(tmp_path, capsys):
    csv = write(tmp_path, ladder())
    code, _, err = run_cli(
        capsys,
        "fit",
        str(csv),
        "--law",
        "power_n",
        "--columns",
        "N=params,loss=val_loss",
        "-o",
        str(tmp_path / "nope" / "fit.nc"),
    )
    assert code == 2
    assert "does not exist" in err


def test_corrupt_fit_file_exits_2(fit_file, tmp_path, capsys):
    broken = tmp_path / "broken.nc"
    broken.write_bytes(fit_file.read_bytes()[:2000])
    code, _, err = run_cli(capsys, "summary", str(broken))
    assert code == 2
    assert "broken.nc" in err and "Traceback" not in err


def test_not_a_fit_file_exits_2(tmp_path, capsys):
    other = tmp_path / "runs.csv"
    ladder().to_csv(other)
    code, _, err = run_cli(capsys, "summary", str(other))
    assert code == 2
    assert "not a netCDF file or corrupt" in err


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
