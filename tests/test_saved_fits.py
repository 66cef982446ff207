"""Fit files written by earlier releases load and predict as they did when they were written.

Each folder of ``tests/saved_fits`` holds the fits one release wrote
(``tests/saved_fits/make.py``) and the posterior-mean log loss each gave at fixed inputs. A
release that can no longer read one of them, or predicts differently from it, breaks users'
saved work: this test fails first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import bayescale as bs
from bayescale.cli.app import main

SAVED = Path(__file__).resolve().parent / "saved_fits"
CASES = [
    (release.name, name)
    for release in sorted(p for p in SAVED.iterdir() if (p / "expected.json").is_file())
    for name in json.loads((release / "expected.json").read_text(encoding="utf-8"))
]


def test_there_are_saved_fits_of_a_release():
    assert CASES, f"no saved fits under {SAVED}"


@pytest.mark.parametrize(("release", "name"), CASES, ids=[f"{r}-{n}" for r, n in CASES])
def test_saved_fit_loads_and_predicts_as_when_written(release, name):
    expected = json.loads((SAVED / release / "expected.json").read_text(encoding="utf-8"))[name]
    fit = bs.load_fit(SAVED / release / f"{name}.nc")
    inputs = {k: np.asarray(v) for k, v in expected["inputs"].items()}
    draws = fit.expected_log_loss(inputs, group=expected["group"])
    np.testing.assert_allclose(draws.mean(("chain", "draw")), expected["mean_log_loss"], rtol=1e-12)
    assert fit.diagnostics.chains >= 1 and fit.n_runs > 0


@pytest.mark.parametrize(("release", "name"), CASES, ids=[f"{r}-{n}" for r, n in CASES])
def test_saved_fit_answers_the_command_line(release, name, tmp_path, capsys):
    copy = tmp_path / f"{name}.nc"
    shutil.copy(SAVED / release / f"{name}.nc", copy)  # read-only checkouts stay untouched
    assert main(["summary", str(copy), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["law"] == bs.load_fit(copy).law.name
