"""Bad input through the command line, table-driven: exit 2, one line naming it, nothing written.

Each case is a command line run against a small valid ladder (or a file derived from it) with
one thing wrong. Every case must:

* exit with code 2;
* print exactly one ``error: ...`` line on stderr, as its last line, matching the case's pattern
  (which names the column, row, file or option at fault), and no traceback;
* leave the working directory as it was: no output, no temporary file.

Every case fails before any sampling, so the whole table runs in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale.cli.app import main
from bayescale.laws.base import evaluate

TRUE = {"E": 1.7, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def ladder(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """A valid Chinchilla-style ladder: model size, tokens, FLOPs, loss and a family label."""
    rng = np.random.default_rng(seed)
    N = np.geomspace(5e7, 2e9, n)
    D = 20 * N * rng.uniform(0.5, 2.0, n)
    loss = evaluate("chinchilla", TRUE, {"N": N, "D": D}) * np.exp(rng.normal(0, 0.01, n))
    family = np.where(np.arange(n) % 2 == 0, "a", "b")
    return pd.DataFrame({"N": N, "D": D, "C": 6 * N * D, "loss": loss, "family": family})


def edit(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A table change: set one cell (``row`` 0-based) to ``value``."""

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object}) if isinstance(value, str) else frame.copy()
        frame.loc[row, column] = value
        return frame

    return apply


@dataclass(frozen=True)
class Case:
    """One bad input: how to make the files, the command line, the expected message."""

    argv: tuple[str, ...]
    pattern: str
    table: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    text: str | None = None  # raw contents of runs.csv, instead of a table


FIT = ("fit", "runs.csv", "--law", "chinchilla", "-o", "fit.nc")
FIT_C = ("fit", "runs.csv", "--law", "power_c", "-o", "fit.nc")
GROUPED = (*FIT, "--group", "family")

CASES: dict[str, Case] = {
    # reading the file
    "empty file": Case(FIT, r"cannot read runs file 'runs\.csv'", text=""),
    "header only": Case(FIT, r"has no rows", text="N,D,C,loss,family\n"),
    "wrong delimiter": Case(
        FIT, r"looks separated by ';'", text="N;D;loss\n1e8;2e9;3.1\n2e8;4e9;3.0\n"
    ),
    "missing file": Case(("fit", "nope/runs.csv", "--law", "chinchilla", "-o", "fit.nc"), "nope"),
    "unknown dataset": Case(("fit", "kaplan_ladr", "-o", "fit.nc"), r"kaplan_ladder"),
    # values
    "text in N": Case(FIT, r"column 'N' must be numeric.*'big' in row 4", edit("N", 3, "big")),
    "units mixed in N": Case(
        FIT, r"column 'N' mixes numbers with units.*'1\.3B'.*row 2", edit("N", 1, "1.3B")
    ),
    "units mixed in D": Case(
        FIT, r"column 'D' mixes numbers with units.*'20B tokens'", edit("D", 5, "20B tokens")
    ),
    "NaN N": Case(FIT, r"column 'N'.*not finite.*row 3", edit("N", 2, np.nan)),
    "inf N": Case(FIT, r"column 'N'.*not finite.*row 3 \(value inf\)", edit("N", 2, np.inf)),
    "negative N": Case(FIT, r"column 'N'.*non-positive.*row 3 \(value -5\.0\)", edit("N", 2, -5.0)),
    "zero N": Case(FIT, r"column 'N'.*non-positive.*row 1 \(value 0\.0\)", edit("N", 0, 0.0)),
    "NaN D": Case(FIT, r"column 'D'.*not finite.*row 7", edit("D", 6, np.nan)),
    "zero D": Case(FIT, r"column 'D'.*non-positive.*row 8", edit("D", 7, 0.0)),
    "negative D": Case(FIT, r"column 'D'.*non-positive.*row 2", edit("D", 1, -1e9)),
    "inf C": Case(FIT_C, r"column 'C'.*not finite.*row 4", edit("C", 3, np.inf)),
    "negative C": Case(FIT_C, r"column 'C'.*non-positive.*row 5", edit("C", 4, -1.0)),
    "NaN loss": Case(FIT, r"column 'loss'.*not finite.*row 5", edit("loss", 4, np.nan)),
    "inf loss": Case(FIT, r"column 'loss'.*not finite.*row 6", edit("loss", 5, -np.inf)),
    "zero loss": Case(FIT, r"column 'loss'.*non-positive.*row 2", edit("loss", 1, 0.0)),
    "negative loss": Case(FIT, r"column 'loss'.*non-positive.*row 9", edit("loss", 8, -2.0)),
    "loss above 20 nats": Case(
        FIT, r"column 'loss'.*above 20 nats/token in row 4 \(value 41\.5\)", edit("loss", 3, 41.5)
    ),
    "copied rows": Case(
        FIT,
        r"copied rows: rows 3, 13 are identical",
        lambda f: pd.concat([f, f.iloc[[2]]], ignore_index=True),
    ),
    # columns, laws, groups
    "missing column": Case(
        FIT, r"no column 'D' \(needed by law 'chinchilla'\)", lambda f: f.drop(columns="D")
    ),
    "unknown column mapped": Case(
        (*FIT, "--columns", "N=params"),
        r"column mapping names column 'params'.*Available columns: 'N'",
    ),
    "bad column mapping": Case((*FIT, "--columns", "N"), r"bad column mapping 'N'"),
    "unknown law": Case(
        ("fit", "runs.csv", "--law", "chinchila", "-o", "fit.nc"),
        r"unknown law 'chinchila'.*chinchilla",
    ),
    "unknown group column": Case((*FIT, "--group", "famly"), r"group column 'famly'.*'family'"),
    "group with one run": Case(
        GROUPED, r"group 'c' has fewer than 2 runs", edit("family", 11, "c")
    ),
    "too few points": Case(
        FIT, r"needs at least 6 distinct \(N, D\) points; .* has 4", lambda f: f.iloc[:4]
    ),
    "unknown compute unit": Case((*FIT_C, "--compute-unit", "gflops"), r"compute_unit 'gflops'"),
    "bad value map": Case((*FIT, "--value-map", "{oops"), r"--value-map is not valid JSON"),
    "bad file pattern": Case((*FIT, "--file-pattern", "(?P<size"), r"bad file_pattern"),
    "last-per-run column missing": Case(
        (*FIT, "--last-per-run", "run"), r"last_per_run names column 'run'"
    ),
    # options
    "prob above 1": Case(
        ("summary", "fit.nc", "--prob", "1.5"),
        r"argument --prob: probability must be between 0 and 1",
    ),
    "prob zero": Case(
        ("predict", "fit.nc", "--N", "1e9", "--D", "2e10", "--prob", "0"), r"argument --prob"
    ),
    "negative N to predict": Case(("predict", "fit.nc", "--N=-1e9"), r"input 'N' must be positive"),
    "zero draws": Case((*FIT, "--draws", "0"), r"argument --draws: expected a number >= 1"),
    "unknown sampler": Case((*FIT, "--sampler", "gibbs"), r"unknown sampler 'gibbs'"),
    "unknown likelihood": Case((*FIT, "--likelihood", "cauchy"), r"likelihood 'cauchy'"),
    "exact sampler with groups": Case(
        (*GROUPED, "--sampler", "exact"), r"exact sampler fits pooled laws only"
    ),
    "pool without groups": Case((*FIT, "--pool", "alpha=none"), r"pool= and centred= need groups"),
    "derive compute with C": Case(
        (*FIT, "--derive-compute"), r"derive_compute=True but the runs table already has .*'C'"
    ),
    "offset column is a group": Case(
        (*GROUPED, "--offset-by", "family"), r"'family' cannot be both a group and the offset"
    ),
    "both holdouts": Case(
        ("backtest", "runs.csv", "--law", "chinchilla", "--holdout-top", "2", "--holdout", "N=1"),
        r"exactly one of --holdout-top K and --holdout COL=VALUE",
    ),
    "missing priors file": Case((*FIT, "--priors", "priors.toml"), r"priors\.toml"),
    # outputs
    "output directory missing": Case(
        ("fit", "runs.csv", "--law", "chinchilla", "-o", "out/fit.nc"),
        r"cannot write -o 'out/fit\.nc': directory 'out' does not exist",
    ),
    "output under a file": Case(
        ("fit", "runs.csv", "--law", "chinchilla", "-o", "runs.csv/fit.nc"),
        r"cannot write -o 'runs\.csv/fit\.nc'",
    ),
    "output is a directory": Case(
        ("fit", "runs.csv", "--law", "chinchilla", "-o", "."),
        r"cannot write -o '\.': it is a directory",
    ),
    # fit files
    "fit file missing": Case(("summary", "gone.nc"), r"fit file 'gone\.nc' does not exist"),
    "fit file of another program": Case(("summary", "other.nc"), r"not a bayescale fit"),
    "fit file truncated": Case(
        ("predict", "truncated.nc", "--N", "1e9"),
        r"cannot read 'truncated\.nc' as a bayescale fit",
    ),
    "fit file is text": Case(
        ("report", "runs.csv", "-o", "report.html"), r"cannot read 'runs\.csv' as a bayescale fit"
    ),
    "input the law does not take": Case(
        ("predict", "fit.nc", "--N", "1e9", "--D", "2e10"), r"law 'power_n' does not take input 'D'"
    ),
    "group of a pooled fit": Case(
        ("predict", "fit.nc", "--N", "1e9", "--group", "family=z"),
        r"this fit has no groups; drop --group",
    ),
}


@pytest.fixture(scope="module")
def fit_files(tmp_path_factory) -> dict[str, bytes]:
    """A real fit (exact sampler, no compile), a foreign netCDF file and a truncated fit."""
    import xarray as xr

    where = tmp_path_factory.mktemp("fits")
    frame = ladder()
    runs = where / "runs.csv"
    frame.to_csv(runs, index=False)
    fit = where / "fit.nc"
    assert main(["fit", str(runs), "--law", "power_n", "--sampler", "exact", "-o", str(fit)]) == 0
    other = where / "other.nc"
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(other, engine="h5netcdf")
    good = fit.read_bytes()
    return {"fit.nc": good, "other.nc": other.read_bytes(), "truncated.nc": good[: len(good) // 2]}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    name, fit_files, tmp_path, monkeypatch, capsys
):
    case = CASES[name]
    monkeypatch.chdir(tmp_path)
    for file, content in fit_files.items():
        Path(file).write_bytes(content)
    if case.text is not None:
        Path("runs.csv").write_text(case.text, encoding="utf-8")
    else:
        frame = ladder()
        (case.table or (lambda f: f))(frame).to_csv("runs.csv", index=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    capsys.readouterr()

    code = main(list(case.argv))

    _, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    assert re.search(case.pattern, errors[0]), errors[0]
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before, "the command wrote or changed files"


def test_table_has_at_least_30_cases():
    assert len(CASES) >= 30


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    edit("N", 2, -5.0)(ladder()).to_csv("runs.csv", index=False)
    from bayescale.core.errors import RunsTableError

    with pytest.raises(RunsTableError, match="non-positive"):
        main(["--debug", *FIT])
