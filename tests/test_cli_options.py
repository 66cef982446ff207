"""The command line's shared options (bayescale.cli.options): one definition, every command."""

from __future__ import annotations

import argparse

import pytest

from bayescale.cli import app
from bayescale.cli.app import build_parser
from bayescale.cli.options import (
    add_sampling_options,
    positive_float,
    positive_int,
    probability,
    sampling_options,
)

#: Commands that fit, with their sampler defaults (draws, tune, chains, seed).
FITTING = {
    ("fit", "runs.csv", "-o", "fit.nc"): (1000, 1000, 4, 0),
    ("backtest", "runs.csv", "--holdout-top", "2"): (1000, 1000, 4, 0),
    ("curves", "fit", "runs.csv", "-o", "fit.nc"): (1000, 1500, 4, 0),
    ("curves", "extrapolate", "runs.csv", "--step", "10"): (1000, 1500, 4, 0),
    ("sbc", "--law", "power_n", "-o", "sbc.nc"): (None, None, None, 0),
}


@pytest.mark.parametrize("argv", list(FITTING), ids=[" ".join(a[:2]) for a in FITTING])
def test_every_fitting_command_takes_the_sampling_options(argv):
    parser = build_parser()
    args = parser.parse_args(list(argv))
    assert (args.draws, args.tune, args.chains, args.seed) == FITTING[argv]
    given = parser.parse_args(
        [*argv, "--draws", "7", "--tune", "8", "--chains", "2", "--seed", "5"]
    )
    assert sampling_options(given) == {"draws": 7, "tune": 8, "chains": 2, "seed": 5}


def test_sampling_options_fill_unset_values_from_the_command_defaults():
    parser = argparse.ArgumentParser()
    add_sampling_options(parser, draws=None, tune=None, chains=None)
    args = parser.parse_args(["--tune", "30"])
    base = {"draws": 200, "tune": 300, "chains": 2}
    assert sampling_options(args, defaults=base) == {
        "draws": 200,
        "tune": 30,
        "chains": 2,
        "seed": 0,
    }
    assert sampling_options(args, defaults=base, seed=False) == {
        "draws": 200,
        "tune": 30,
        "chains": 2,
    }


def test_sampling_help_states_defaults_only_where_asked():
    parser = argparse.ArgumentParser()
    add_sampling_options(parser, tune=1500, defaults_in_help=True)
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["tune"] == "tuning steps per chain (default 1500)"
    assert helps["seed"] == "random seed (default 0)"
    plain = argparse.ArgumentParser()
    add_sampling_options(plain, help={"chains": "chains (default 4; --fast 2)"}, seed=False)
    helps = {a.dest: a.help for a in plain._actions}
    assert helps["draws"] == "draws per chain" and helps["chains"] == "chains (default 4; --fast 2)"
    assert "seed" not in helps


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (positive_int, "x", "expected a whole number, got 'x'"),
        (positive_int, "0", "expected a number >= 1, got 0"),
        (probability, "x", "expected a probability, got 'x'"),
        (probability, "1", "probability must be between 0 and 1, got 1.0"),
        (positive_float, "x", "expected a number, got 'x'"),
        (positive_float, "inf", "expected a positive finite number, got inf"),
    ],
)
def test_argument_types_refuse_bad_text_with_the_same_messages(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        kind(text)
    assert str(caught.value) == message


def test_app_still_exports_the_moved_helpers():
    for name in ("add_table_options", "table_options", "law_option", "output_path"):
        assert name in app.__all__ and callable(getattr(app, name))
    assert (positive_int("3"), probability("0.5"), positive_float("1e11")) == (3, 0.5, 1e11)
