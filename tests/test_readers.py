"""Readers for real exports: facts in file names, size labels, one row per checkpoint.

The synthetic directories mimic a W&B export of a model ladder (one CSV per run, named
``<size>-<multiplier>xC[-rerun].csv``, one row per evaluation, metric names with ``/``); the last
tests load the real OLMo ladder from ``../shared/data`` through the same options.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, needs_shared_data

from bayescale.core.errors import RunsTableError, UnknownNameError
from bayescale.runs.table import load_runs, replicate_sets

PATTERN = r"^(?P<size>[^-]+)-(?P<mult>[0-9.]+)xC(?:-(?P<rerun>rerun))?$"
SIZES = {"small": 1.0e8, "large": 4.0e8}
COLUMNS = {"N": "size", "D": "tokens", "loss": "eval/c4/loss", "step": "_step"}
OLMO_DIR = SHARED_DATA / "olmo-ladder" / "ladder-runs"
#: Non-embedding parameters of the OLMo ladder sizes (OLMo-ladder src/scaling/utils.py
#: MODEL_PARAMS, as recorded in ../shared/data/SOURCE.md).
OLMO_N = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840}
OLMO = {
    "file_pattern": PATTERN,
    "value_map": {"size": OLMO_N},
    "columns": {
        "N": "size",
        "D": "throughput/total_tokens",
        "loss": "eval/c4_en-validation/CrossEntropyLoss",
        "step": "_step",
    },
    "last_per_run": "source_file",
}


def write_run(directory: Path, name: str, steps: list[int], losses: list[float]) -> None:
    """One run's export: a row per evaluation, tokens = 1000 per step."""
    frame = pd.DataFrame(
        {
            "_step": steps,
            "tokens": [1000.0 * s for s in steps],
            "eval/c4/loss": losses,
            "lr": 1e-3,
        }
    )
    frame.to_csv(directory / f"{name}.csv", index=False)


@pytest.fixture
def ladder_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "runs"
    directory.mkdir()
    # Steps logged out of order and an evaluation missing at the last step of "large-2xC":
    # the final checkpoint is the largest step *with* a loss.
    write_run(directory, "small-1xC", [100, 300, 200], [4.0, 3.5, 3.7])
    write_run(directory, "small-1xC-rerun", [100, 200, 300], [4.1, 3.6, 3.52])
    write_run(directory, "large-2xC", [100, 500, 600], [3.9, 3.0, np.nan])
    return directory


def load(directory: Path, **overrides):
    options = {
        "file_pattern": PATTERN,
        "value_map": {"size": SIZES},
        "columns": COLUMNS,
        "last_per_run": "source_file",
        "allow_replicates": True,
    } | overrides
    return load_runs(directory, **options)


def test_final_checkpoint_per_run_with_fields_from_file_names(ladder_dir):
    runs = load(ladder_dir)
    table = runs.to_dataframe().set_index("source_file").sort_index()
    assert list(table.index) == ["large-2xC", "small-1xC", "small-1xC-rerun"]
    assert table["step"].tolist() == [500, 300, 300]
    assert table["loss"].tolist() == [3.0, 3.5, 3.52]
    assert table["D"].tolist() == [5e5, 3e5, 3e5]
    assert table["N"].tolist() == [4e8, 1e8, 1e8]
    assert table["mult"].tolist() == ["2", "1", "1"]
    assert table["rerun"].tolist() == ["", "", "rerun"]


def test_slash_column_names_are_stored_with_dots(ladder_dir):
    # W&B metric names contain '/', which netCDF (and so fit files) cannot store as a name.
    runs = load_runs(
        ladder_dir,
        columns={"N": "size", "D": "tokens", "loss": "lr"},
        file_pattern=PATTERN,
        value_map={"size": SIZES},
        allow_replicates=True,
    )
    assert "eval.c4.loss" in runs and "eval/c4/loss" not in runs
    assert runs.sizes["run"] == 9


def test_without_last_per_run_every_checkpoint_is_a_row(ladder_dir):
    with pytest.raises(RunsTableError, match=r"column 'loss'.*not finite.*large-2xC.csv row 3"):
        load(ladder_dir, last_per_run=None)


def test_last_row_when_there_is_no_step_column(tmp_path):
    frame = pd.DataFrame(
        {"run_name": ["a", "a", "b", "b"], "N": [1e8, 1e8, 2e8, 2e8], "loss": [4, 3, 5, 2.0]}
    )
    runs = load_runs(frame, last_per_run="run_name")
    assert runs["loss"].values.tolist() == [3.0, 2.0]


def test_run_without_any_loss_is_kept_and_named(tmp_path):
    directory = tmp_path / "runs"
    directory.mkdir()
    write_run(directory, "small-1xC", [100, 200], [4.0, 3.5])
    write_run(directory, "large-1xC", [100, 200], [np.nan, np.nan])
    with pytest.raises(RunsTableError, match=r"loss.*large-1xC.csv row 2"):
        load(directory)


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"file_pattern": "(?P<size>["}, RunsTableError, r"bad file_pattern"),
        ({"file_pattern": r"(\w+)-"}, RunsTableError, r"no named groups"),
        ({"file_pattern": r"^(?P<size>\w+)-(?P<mult>\d+)zC"}, RunsTableError, r"does not match"),
        ({"file_pattern": r"(?P<lr>\w+)-"}, RunsTableError, r"group 'lr' is already a column"),
        ({"value_map": {"size": {"small": 1e8}}}, RunsTableError, r"no number for 'large'"),
        ({"value_map": {"sise": SIZES}}, RunsTableError, r"value_map names column 'sise'.*'size'"),
        ({"last_per_run": "run_id"}, RunsTableError, r"last_per_run names column 'run_id'"),
    ],
    ids=[
        "bad-regex",
        "no-named-groups",
        "file-not-matching",
        "group-clashes-with-column",
        "label-without-number",
        "value-map-unknown-column",
        "unknown-run-column",
    ],
)
def test_reader_option_errors_name_the_problem(ladder_dir, options, error, pattern):
    with pytest.raises(error, match=pattern):
        load(ladder_dir, **options)


def test_file_pattern_needs_files():
    frame = pd.DataFrame({"N": [1e8, 2e8], "loss": [3.0, 2.9]})
    with pytest.raises(RunsTableError, match="file or a directory"):
        load_runs(frame, file_pattern=PATTERN)


def test_file_pattern_on_a_single_file(tmp_path):
    write_run(tmp_path, "small-1xC", [100, 200], [4.0, 3.5])
    runs = load_runs(
        tmp_path / "small-1xC.csv",
        file_pattern=PATTERN,
        value_map={"size": SIZES},
        columns=COLUMNS,
        last_per_run="size",
    )
    assert runs["N"].values.tolist() == [1e8] and runs["loss"].values.tolist() == [3.5]


def test_group_column_with_slash_is_refused(tmp_path):
    frame = pd.DataFrame({"N": [1e8, 2e8], "loss": [3.0, 2.9], "eval/set": ["a", "b"]})
    with pytest.raises(RunsTableError, match="'/' in its name"):
        load_runs(frame, groups="eval/set")


def test_unknown_group_still_reported_first_for_plain_names(tmp_path):
    frame = pd.DataFrame({"N": [1e8, 2e8], "loss": [3.0, 2.9]})
    with pytest.raises(UnknownNameError):
        load_runs(frame, groups="family")


# --------------------------------------------------------------------------------------------
# The real OLMo ladder (190M-1.3B x 0.5-10xC, with reruns of 1xC), final checkpoints.


@needs_shared_data
def test_olmo_ladder_loads_final_checkpoints_with_reruns_as_replicates():
    runs = load_runs(OLMO_DIR, **OLMO)
    table = runs.to_dataframe()
    assert len(table) == 24
    assert sorted(table["N"].unique()) == sorted(OLMO_N.values())
    # Every run ends at its token budget: multiplier x 20 tokens per parameter (within 1 %).
    mult = table["mult"].astype(float)
    assert np.allclose(table["D"], mult * 20 * table["N"], rtol=0.01)
    # The four reruns repeat the 1xC configuration: same N and D, loss within 0.1 %.
    reruns = table[table["rerun"] == "rerun"]
    assert len(reruns) == 4
    for _, row in reruns.iterrows():
        twin = table[(table["N"] == row["N"]) & (table["D"] == row["D"]) & (table["rerun"] == "")]
        assert len(twin) == 1
        assert abs(np.log(twin["loss"].iloc[0] / row["loss"])) < 1e-3
    # C4 loss at the end of training: 3.75 (190M-0.5xC) .. 2.83 (1B-10xC), as in SOURCE.md.
    assert table["loss"].max() == pytest.approx(3.747, abs=1e-3)
    assert table["loss"].min() == pytest.approx(2.832, abs=1e-3)


@needs_shared_data
def test_olmo_reruns_are_replicates_refused_only_on_request():
    runs = load_runs(OLMO_DIR, **OLMO)
    sets = np.bincount(replicate_sets(runs, ["N", "D"]))
    assert (sets.size, int(np.sum(sets > 1))) == (20, 4)
    with pytest.raises(RunsTableError, match="duplicate runs"):
        load_runs(OLMO_DIR, allow_replicates=False, **OLMO)


@needs_shared_data
def test_olmo_ladder_fits_from_the_cli_with_its_reruns(tmp_path, capsys):
    # The table as users have it: a directory of W&B exports, sizes only in the file names,
    # one row per checkpoint and a 1xC rerun per size; every load_runs option is a CLI flag.
    import json

    from bayescale.cli.app import main

    out = tmp_path / "olmo.nc"
    columns = ",".join(f"{k}={v}" for k, v in OLMO["columns"].items())
    argv = [
        "fit",
        str(OLMO_DIR),
        "--law",
        "power_d",
        "--sampler",
        "exact",
        "--file-pattern",
        OLMO["file_pattern"],
        "--value-map",
        json.dumps(OLMO["value_map"]),
        "--columns",
        columns,
        "--last-per-run",
        "source_file",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["summary", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_runs"] == 24
    assert doc["replicates"] == {"n_points": 20, "n_sets": 4, "n_runs_in_sets": 8}
