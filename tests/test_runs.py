"""Tests for bayescale.runs.table: reading, column mapping, validation and the output Dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayescale
import bayescale.runs.datasets as datasets_mod
import bayescale.runs.readers as readers_mod
from bayescale.core.errors import BayescaleError, RunsTableError, UnknownNameError
from bayescale.runs.table import (
    CANONICAL,
    PF_DAY_FLOPS,
    bundled_dir,
    check_enough_points,
    dataset_info,
    find_run_id,
    list_datasets,
    load_runs,
    parse_columns,
    replicate_sets,
    stored_column,
)


def make_frame(**overrides) -> pd.DataFrame:
    """Four distinct, valid runs with canonical names; keyword arguments replace columns."""
    data = {
        "N": [1e8, 2e8, 4e8, 8e8],
        "D": [2e9, 4e9, 8e9, 1.6e10],
        "loss": [3.2, 3.0, 2.8, 2.7],
    }
    data.update(overrides)
    return pd.DataFrame(data)


@pytest.fixture
def bundled(tmp_path, monkeypatch) -> Path:
    """A temporary bundled-data directory with one complete dataset and one orphan CSV."""
    directory = tmp_path / "bundled"
    directory.mkdir()
    make_frame().to_csv(directory / "toy.csv", index=False)
    (directory / "toy.json").write_text(
        json.dumps({"description": "toy runs", "law": "chinchilla"}), encoding="utf-8"
    )
    make_frame().to_csv(directory / "orphan.csv", index=False)  # no sidecar: not a dataset
    monkeypatch.setattr(datasets_mod, "bundled_dir", lambda: directory)
    monkeypatch.setattr(readers_mod, "bundled_dir", lambda: directory)
    return directory


# --------------------------------------------------------------------------------------------
# parse_columns and mappings


def test_parse_columns_basic_and_whitespace():
    assert parse_columns("N=params, D = tokens") == {"N": "params", "D": "tokens"}


def test_parse_columns_source_may_contain_equals():
    assert parse_columns("loss=eval/loss=final") == {"loss": "eval/loss=final"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("N:params", "part 'N:params'"),
        ("N=params,", "part ''"),
        ("", "part ''"),
        ("N=", "part 'N='"),
        ("=params", "part '=params'"),
    ],
)
def test_parse_columns_malformed(spec, fragment):
    with pytest.raises(RunsTableError, match=re.escape(fragment)) as info:
        parse_columns(spec)
    assert "CANONICAL=column" in str(info.value)
    assert "N=params,D=tokens" in str(info.value)


def test_parse_columns_unknown_canonical_suggests():
    with pytest.raises(RunsTableError, match="'Loss' is not a canonical column") as info:
        parse_columns("Loss=val_loss")
    assert "Did you mean 'loss'?" in str(info.value)


def test_parse_columns_duplicate_canonical():
    with pytest.raises(RunsTableError, match="'N' is mapped twice"):
        parse_columns("N=a,N=b")


def test_mapping_same_source_twice():
    with pytest.raises(RunsTableError, match="column 'x' is mapped to N and D"):
        parse_columns("N=x,D=x")


def test_mapping_dict_unknown_canonical():
    with pytest.raises(RunsTableError, match="'params' is not a canonical column"):
        load_runs(make_frame(), columns={"params": "N"})


def test_column_mapping_dict_and_string_agree():
    frame = make_frame().rename(columns={"N": "params", "D": "tokens", "loss": "val"})
    a = load_runs(frame, columns={"N": "params", "D": "tokens", "loss": "val"})
    b = load_runs(frame, columns="N=params,D=tokens,loss=val")
    xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(a["N"].values, [1e8, 2e8, 4e8, 8e8])
    assert "params" not in a.data_vars
    assert json.loads(a.attrs["columns"]) == {"N": "params", "D": "tokens", "loss": "val"}


def test_mapped_column_missing_lists_available():
    frame = make_frame().rename(columns={"N": "params"})
    with pytest.raises(RunsTableError, match="names column 'parms'") as info:
        load_runs(frame, columns="N=parms")
    message = str(info.value)
    assert "Did you mean 'params'?" in message
    assert "'params', 'D', 'loss'" in message


def test_mapping_onto_existing_canonical_column_is_refused():
    frame = make_frame(params=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(RunsTableError, match="already has a column 'N'"):
        load_runs(frame, columns={"N": "params"})


def test_mapping_can_swap_columns():
    frame = make_frame()
    runs = load_runs(frame, columns={"N": "D", "D": "N"})
    np.testing.assert_array_equal(runs["N"].values, frame["D"].to_numpy())
    np.testing.assert_array_equal(runs["D"].values, frame["N"].to_numpy())


# --------------------------------------------------------------------------------------------
# sources


def test_dataframe_source_output_structure():
    frame = make_frame(family=["a", "a", "b", "b"], lr=[1e-3, 1e-3, 2e-3, 2e-3], note="x")
    frame.index = [10, 11, 12, 13]  # a user's index must not leak into run numbers
    runs = load_runs(frame, groups=["family"])
    assert runs.sizes == {"run": 4}
    np.testing.assert_array_equal(runs["run"].values, np.arange(4))
    assert list(runs.data_vars) == ["N", "D", "loss", "family", "lr", "note"]
    for name in ("N", "D", "loss"):
        assert runs[name].dtype == np.float64
        assert runs[name].dims == ("run",)
    assert runs["N"].attrs["units"] == "parameters (non-embedding)"
    assert runs["D"].attrs["units"] == "tokens"
    assert runs["loss"].attrs["units"] == "nats/token"
    assert runs["family"].values.tolist() == ["a", "a", "b", "b"]
    assert runs["lr"].dtype == np.float64
    assert runs["note"].values.tolist() == ["x"] * 4
    assert runs.attrs["source"].startswith("DataFrame")
    assert json.loads(runs.attrs["groups"]) == ["family"]
    assert runs.attrs["compute_unit_in"] == "flops"
    assert json.loads(runs.attrs["columns"]) == {"N": "N", "D": "D", "loss": "loss"}
    # Every attribute is a string or number, so netCDF can store it.
    for attrs in [runs.attrs, *(runs[v].attrs for v in runs.data_vars)]:
        assert all(isinstance(v, str | int | float) for v in attrs.values())


def test_all_canonical_units():
    frame = make_frame(C=[1e18] * 4, step=[1, 2, 3, 4], batch=[5e5] * 4)
    runs = load_runs(frame)
    assert [v for v in runs.data_vars] == ["N", "D", "C", "loss", "step", "batch"]
    assert {v: runs[v].attrs["units"] for v in CANONICAL} == {
        "N": "parameters (non-embedding)",
        "D": "tokens",
        "C": "FLOPs",
        "loss": "nats/token",
        "step": "optimizer steps",
        "batch": "tokens per step",
    }
    assert runs["step"].dtype == np.float64


def test_extra_columns_keep_their_kind():
    frame = make_frame(seed=[1, 2, 3, 4], ok=[True, False, True, True], tag=["a", None, "c", "d"])
    runs = load_runs(frame)
    assert runs["seed"].dtype == np.int64
    assert runs["ok"].dtype == bool
    assert runs["tag"].values.tolist() == ["a", "", "c", "d"]


def test_csv_source(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params, tokens, loss\n1e8, 2e9, 3.2\n2e8, 4e9, 3.0\n", encoding="utf-8")
    runs = load_runs(path, columns="N=params,D=tokens")
    np.testing.assert_array_equal(runs["D"].values, [2e9, 4e9])
    assert str(path) in runs.attrs["source"]


def test_csv_source_as_str(tmp_path):
    path = tmp_path / "runs.csv"
    make_frame().to_csv(path, index=False)
    runs = load_runs(str(path))
    np.testing.assert_array_equal(runs["loss"].values, [3.2, 3.0, 2.8, 2.7])


def test_parquet_source(tmp_path):
    path = tmp_path / "runs.parquet"
    make_frame().to_parquet(path)
    runs = load_runs(path)
    np.testing.assert_array_equal(runs["N"].values, [1e8, 2e8, 4e8, 8e8])
    pq = tmp_path / "runs.pq"
    make_frame().to_parquet(pq)
    np.testing.assert_array_equal(load_runs(pq)["N"].values, [1e8, 2e8, 4e8, 8e8])


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_source(tmp_path, suffix):
    path = tmp_path / f"runs{suffix}"
    make_frame().to_json(path, orient="records", lines=True)
    runs = load_runs(path)
    np.testing.assert_array_equal(runs["D"].values, [2e9, 4e9, 8e9, 1.6e10])


def test_json_source(tmp_path):
    path = tmp_path / "runs.json"
    make_frame().to_json(path, orient="records")
    runs = load_runs(path)
    np.testing.assert_array_equal(runs["loss"].values, [3.2, 3.0, 2.8, 2.7])


def test_tsv_source(tmp_path):
    path = tmp_path / "runs.tsv"
    make_frame().to_csv(path, sep="\t", index=False)
    np.testing.assert_array_equal(load_runs(path)["N"].values, [1e8, 2e8, 4e8, 8e8])


def write_run_dir(directory: Path) -> None:
    directory.mkdir()
    # Two runs logged as curves; the second also logged a metric the first did not.
    (directory / "small.csv").write_text(
        "N,D,step,loss\n1e8,1e9,1,4.0\n1e8,2e9,2,3.5\n", encoding="utf-8"
    )
    (directory / "big.csv").write_text(
        "N,D,step,loss,grad_norm\n1e9,1e9,1,3.8,0.5\n1e9,2e9,2,3.1,0.4\n1e9,3e9,3,2.9,0.3\n",
        encoding="utf-8",
    )
    (directory / "README.txt").write_text("not a run", encoding="utf-8")
    (directory / "crashed.csv").write_text("N,D,step,loss\n", encoding="utf-8")  # no rows


def test_directory_of_csvs(tmp_path):
    directory = tmp_path / "wandb"
    write_run_dir(directory)
    runs = load_runs(directory, groups=["source_file"])
    assert runs.sizes["run"] == 5
    # Files are read in sorted order: big.csv first.
    assert runs["source_file"].values.tolist() == ["big"] * 3 + ["small"] * 2
    assert np.isnan(runs["grad_norm"].values[3:]).all()
    np.testing.assert_array_equal(runs["grad_norm"].values[:3], [0.5, 0.4, 0.3])
    assert "3 .csv files" in runs.attrs["source"]


def test_directory_errors_name_file_and_row(tmp_path):
    directory = tmp_path / "wandb"
    write_run_dir(directory)
    (directory / "small.csv").write_text(
        "N,D,step,loss\n1e8,1e9,1,4.0\n-1e8,2e9,2,3.5\n", encoding="utf-8"
    )
    with pytest.raises(RunsTableError, match=r"row 5 \(small\.csv row 2\)"):
        load_runs(directory)


def test_directory_without_csvs(tmp_path):
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(RunsTableError, match=r"holds no \.csv files"):
        load_runs(tmp_path)


def test_directory_with_own_source_file_column(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    make_frame(source_file="x").to_csv(directory / "a.csv", index=False)
    with pytest.raises(RunsTableError, match="has a column 'source_file'"):
        load_runs(directory)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "runs.xlsx"
    path.write_bytes(b"whatever")
    with pytest.raises(RunsTableError, match=r"unsupported extension '\.xlsx'"):
        load_runs(path)


def test_corrupt_parquet_names_path_and_reason(tmp_path):
    path = tmp_path / "runs.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(RunsTableError, match="cannot read runs file") as info:
        load_runs(path)
    message = str(info.value)
    assert str(path) in message
    assert "magic bytes" in message  # pyarrow's own reason is passed on


def test_corrupt_json(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(RunsTableError, match=re.escape(str(path))):
        load_runs(path)


def test_empty_csv(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(RunsTableError, match=r"cannot read runs file.*No columns to parse"):
        load_runs(path)


def test_missing_parquet_engine_hint(tmp_path, monkeypatch):
    def no_engine(path, text):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setitem(readers_mod._READERS, ".parquet", no_engine)
    path = tmp_path / "runs.parquet"
    make_frame().to_parquet(path)
    with pytest.raises(RunsTableError, match=r"pip install 'bayescale\[parquet\]'"):
        load_runs(path)


def test_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n", encoding="utf-8")
    with pytest.raises(RunsTableError, match="has no rows"):
        load_runs(path)


def test_missing_path_with_separator(tmp_path):
    with pytest.raises(RunsTableError, match="does not exist"):
        load_runs(tmp_path / "nope.csv")


def test_bad_source_type():
    with pytest.raises(TypeError, match="got list"):
        load_runs([1, 2, 3])


# --------------------------------------------------------------------------------------------
# bundled datasets


def test_list_datasets_needs_sidecar(bundled):
    assert list_datasets() == ["toy"]


def test_dataset_info(bundled):
    assert dataset_info("toy") == {"description": "toy runs", "law": "chinchilla"}


def test_dataset_info_unknown(bundled):
    with pytest.raises(UnknownNameError, match="'tyo' is not a bundled dataset") as info:
        dataset_info("tyo")
    assert "Did you mean 'toy'?" in str(info.value)


def test_dataset_info_corrupt_sidecar(bundled):
    (bundled / "toy.json").write_text("{", encoding="utf-8")
    with pytest.raises(RunsTableError, match="cannot read metadata of dataset 'toy'"):
        dataset_info("toy")


def test_load_bundled_by_name(bundled):
    runs = load_runs("toy")
    assert runs.attrs["source"] == "bundled dataset 'toy'"
    np.testing.assert_array_equal(runs["N"].values, [1e8, 2e8, 4e8, 8e8])


def test_unknown_name_lists_bundled(bundled):
    with pytest.raises(UnknownNameError, match="'tyo' is neither an existing file") as info:
        load_runs("tyo")
    assert "Valid choices: toy." in str(info.value)
    assert "Did you mean 'toy'?" in str(info.value)
    assert isinstance(info.value, BayescaleError)


def test_unknown_name_without_bundled_data(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets_mod, "bundled_dir", lambda: tmp_path / "absent")
    assert list_datasets() == []
    with pytest.raises(UnknownNameError, match="No bundled datasets are installed"):
        load_runs("toy")


def test_existing_file_wins_over_bundled_name(bundled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("toy").write_text("N,D,loss\n5,6,7\n", encoding="utf-8")  # no extension: unreadable
    with pytest.raises(RunsTableError, match="unsupported extension"):
        load_runs("toy")


def test_bundled_dir_prefers_installed_copy(tmp_path, monkeypatch):
    (tmp_path / "_bundled").mkdir()
    monkeypatch.setattr(datasets_mod.importlib.resources, "files", lambda package: tmp_path)
    assert bundled_dir() == tmp_path / "_bundled"


def test_bundled_dir_falls_back_to_repo_data():
    # In a source checkout there is no bayescale/_bundled, so the repository's data/ is used.
    package = Path(bayescale.__file__).resolve().parent
    expected = package.parent / "data"
    if (package / "_bundled").is_dir():
        expected = package / "_bundled"
    assert bundled_dir() == expected


# --------------------------------------------------------------------------------------------
# numbers and units


def test_non_numeric_value_names_column_row_and_value():
    frame = make_frame(N=["1e8", "2e8", "lots", "oops"])
    with pytest.raises(RunsTableError, match="column 'N'") as info:
        load_runs(frame)
    message = str(info.value)
    assert "'lots' in row 3" in message
    assert "and 1 more rows" in message


def test_non_numeric_in_csv_counts_data_rows(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e8,2e9,3.0\n2e8,2e9,2.9\n3e8,n/a?,2.8\n", encoding="utf-8")
    with pytest.raises(RunsTableError, match=r"column 'D'.*'n/a\?' in row 3\."):
        load_runs(path)


def test_numeric_strings_are_converted():
    runs = load_runs(make_frame(N=["1e8", "2e8", "4e8", "8e8"]))
    assert runs["N"].dtype == np.float64
    assert runs["N"].values[2] == 4e8


@pytest.mark.parametrize("unit", ["pf-days", "pfdays", "pf_days", "PF-days"])
def test_pf_days_converted_to_flops(unit):
    runs = load_runs(make_frame(C=[1.0, 2.0, 0.5, 4.0]), compute_unit=unit)
    np.testing.assert_allclose(runs["C"].values, np.array([1.0, 2.0, 0.5, 4.0]) * 8.64e19)
    assert runs["C"].attrs["units"] == "FLOPs"
    assert runs.attrs["compute_unit_in"] == unit
    assert PF_DAY_FLOPS == 8.64e19


def test_flops_unchanged():
    runs = load_runs(make_frame(C=[1e18, 2e18, 3e18, 4e18]))
    np.testing.assert_array_equal(runs["C"].values, [1e18, 2e18, 3e18, 4e18])


def test_unknown_compute_unit():
    with pytest.raises(RunsTableError, match="unknown compute_unit 'gflops'") as info:
        load_runs(make_frame(), compute_unit="gflops")
    assert "flops, pf-days" in str(info.value)


def test_derive_compute():
    runs = load_runs(make_frame(), derive_compute=True)
    np.testing.assert_allclose(runs["C"].values, 6 * runs["N"].values * runs["D"].values)
    assert runs["C"].values[0] == 6 * 1e8 * 2e9
    assert runs["C"].attrs == {"units": "FLOPs", "derived": "6*N*D"}
    assert json.loads(runs.attrs["columns"])["C"] == "6*N*D"


def test_no_compute_unless_asked():
    assert "C" not in load_runs(make_frame()).data_vars


def test_derive_compute_refuses_existing_c():
    with pytest.raises(RunsTableError, match="already has compute column 'C'"):
        load_runs(make_frame(C=[1e18] * 4), derive_compute=True)


def test_derive_compute_needs_d():
    with pytest.raises(RunsTableError, match=r"no column 'D' \(needed by derive_compute"):
        load_runs(make_frame().drop(columns="D"), derive_compute=True)


# --------------------------------------------------------------------------------------------
# required columns


def test_required_column_missing_message():
    frame = make_frame().rename(columns={"D": "tokens"})
    with pytest.raises(RunsTableError, match="runs table has no column 'D'") as info:
        load_runs(frame, required=["N", "D"], law_name="chinchilla")
    message = str(info.value)
    assert "needed by law 'chinchilla'" in message
    assert "'N', 'tokens', 'loss'" in message
    assert "columns={'D': '<name>'}" in message
    assert "--columns D=<name>" in message


def test_required_column_missing_suggests_close_name():
    frame = make_frame().rename(columns={"N": "n"})
    with pytest.raises(RunsTableError, match="Did you mean 'n'") as info:
        load_runs(frame, required="N")  # a bare string is one column, not 'N' letters
    assert "--columns N=n" in str(info.value)


def test_loss_always_required():
    with pytest.raises(RunsTableError, match=r"no column 'loss' \(required\)"):
        load_runs(make_frame().drop(columns="loss"))


def test_required_satisfied_by_derived_compute():
    runs = load_runs(make_frame(), required=["C"], derive_compute=True)
    assert "C" in runs


# --------------------------------------------------------------------------------------------
# value checks


@pytest.mark.parametrize("column", ["N", "D", "C", "step", "batch"])
def test_non_positive_inputs(column):
    frame = make_frame(C=[1e18] * 4, step=[1, 2, 3, 4], batch=[256, 256, 512, 512])
    frame[column] = frame[column].astype(float)
    frame.loc[2, column] = 0.0
    with pytest.raises(RunsTableError, match=f"column '{column}'.*non-positive.*row 3"):
        load_runs(frame)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_not_finite_inputs(bad):
    frame = make_frame(D=[2e9, bad, 8e9, 1.6e10])
    with pytest.raises(RunsTableError, match=r"column 'D'.*not finite.*row 2"):
        load_runs(frame)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_loss_not_finite(bad):
    with pytest.raises(RunsTableError, match=r"column 'loss'.*not finite.*row 4"):
        load_runs(make_frame(loss=[3.2, 3.0, 2.8, bad]))


def test_loss_non_positive():
    with pytest.raises(RunsTableError, match=r"column 'loss'.*non-positive.*row 1 \(value -0.5\)"):
        load_runs(make_frame(loss=[-0.5, 3.0, 2.8, 2.7]))


def test_empty_cell_in_csv_is_not_finite(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss\n1e8,2e9,3.0\n2e8,4e9,\n", encoding="utf-8")
    with pytest.raises(RunsTableError, match=r"column 'loss'.*not finite.*row 2"):
        load_runs(path)


def test_many_bad_rows_are_truncated():
    n = 8
    frame = pd.DataFrame({"N": -np.arange(1.0, n + 1), "D": [1e9] * n, "loss": [3.0] * n})
    with pytest.raises(RunsTableError, match=r"rows 1 .*, 5 \(value -5\.0\) and 3 more"):
        load_runs(frame)


# --------------------------------------------------------------------------------------------
# duplicates


def test_replicates_accepted_by_default():
    # Reruns at the same (N, D) with another seed differ in their loss: evidence of seed noise.
    frame = make_frame(
        N=[1e8, 1e8, 4e8, 8e8], D=[2e9, 2e9, 8e9, 1.6e10], loss=[3.2, 3.25, 2.8, 2.7]
    )
    runs = load_runs(frame, required=["N", "D"])
    assert runs.sizes["run"] == 4
    np.testing.assert_array_equal(replicate_sets(runs, ["N", "D"]), [0, 0, 1, 2])


def test_replicate_sets_respect_labels():
    frame = make_frame(N=[1e8, 1e8, 1e8, 8e8], D=[2e9] * 3 + [1.6e10], fam=["a", "b", "a", "a"])
    runs = load_runs(frame, groups=["fam"])
    np.testing.assert_array_equal(replicate_sets(runs, ["N", "D"], ["fam"]), [0, 1, 0, 2])
    np.testing.assert_array_equal(replicate_sets(runs, ["N", "D"]), [0, 0, 0, 1])


def test_replicates_refused_when_asked():
    frame = make_frame(N=[1e8, 2e8, 1e8, 8e8], D=[2e9, 4e9, 2e9, 1.6e10])
    with pytest.raises(RunsTableError, match="duplicate runs: rows 1, 3 have the same N, D"):
        load_runs(frame, required=["N", "D"], allow_replicates=False)


def test_strict_duplicates_checked_on_default_inputs():
    frame = make_frame(N=[1e8, 2e8, 1e8, 8e8], D=[2e9, 4e9, 2e9, 1.6e10])
    with pytest.raises(RunsTableError, match="rows 1, 3"):
        load_runs(frame, allow_replicates=False)


def test_strict_duplicates_only_on_required_inputs():
    # Same N in rows 1 and 3 is a replicate for a law of N alone...
    frame = make_frame(N=[1e8, 2e8, 1e8, 8e8])
    with pytest.raises(RunsTableError, match="rows 1, 3 have the same N"):
        load_runs(frame, required=["N"], allow_replicates=False)
    # ...while the default key (N, D) tells them apart.
    assert load_runs(frame, allow_replicates=False).sizes["run"] == 4


def test_strict_same_inputs_different_groups_are_fine():
    frame = make_frame(N=[1e8, 1e8, 4e8, 8e8], D=[2e9, 2e9, 8e9, 1.6e10], fam=["a", "b", "a", "a"])
    assert load_runs(frame, groups=["fam"], allow_replicates=False).sizes["run"] == 4
    with pytest.raises(RunsTableError, match="duplicate runs"):
        load_runs(frame, allow_replicates=False)


def test_strict_same_inputs_same_group_are_duplicates():
    frame = make_frame(N=[1e8, 1e8, 4e8, 8e8], D=[2e9, 2e9, 8e9, 1.6e10], fam=["a", "a", "b", "a"])
    with pytest.raises(RunsTableError, match="rows 1, 2 have the same N, D, fam"):
        load_runs(frame, groups=["fam"], allow_replicates=False)


def test_copies_refused_naming_rows():
    frame = make_frame(N=[1e8, 2e8, 1e8, 8e8], D=[2e9, 4e9, 2e9, 1.6e10], loss=[3.2, 3.0, 3.2, 2.7])
    with pytest.raises(RunsTableError, match=r"copied rows: rows 1, 3 are identical in every"):
        load_runs(frame)


def test_copies_with_missing_cells_are_still_copies():
    frame = make_frame(
        note=["x", None, "y", None], loss=[3.2, 3.0, 2.8, 3.0], N=[1e8, 2e8, 4e8, 2e8]
    )
    frame["D"] = [2e9, 4e9, 8e9, 4e9]
    with pytest.raises(RunsTableError, match="rows 2, 4 are identical"):
        load_runs(frame)


def test_drop_copies_keeps_first_and_counts():
    frame = make_frame(
        N=[1e8, 2e8, 1e8, 8e8, 1e8],
        D=[2e9, 4e9, 2e9, 1.6e10, 2e9],
        loss=[3.2, 3.0, 3.2, 2.7, 3.3],
    )
    runs = load_runs(frame, drop_copies=True)
    assert runs["loss"].values.tolist() == [3.2, 3.0, 2.7, 3.3]
    assert runs.attrs["copies_dropped"] == 1
    # Messages after the drop still name the rows of the file.
    frame.loc[4, "N"] = -1.0
    with pytest.raises(RunsTableError, match=r"row 4 \(input row 5\)"):
        load_runs(frame, drop_copies=True)


def test_steps_and_batches_distinguish_rows():
    frame = make_frame(N=[1e8] * 4, D=[2e9] * 4, step=[1, 2, 3, 4])
    assert load_runs(frame, required=["N", "D"]).sizes["run"] == 4
    frame = make_frame(N=[1e8] * 4, D=[2e9] * 4, batch=[1, 2, 3, 4])
    assert load_runs(frame, required=["N", "D"]).sizes["run"] == 4


# --------------------------------------------------------------------------------------------
# groups and names


def test_unknown_group_column():
    frame = make_frame(family=["a", "b", "a", "b"])
    with pytest.raises(UnknownNameError, match="group column 'famly'") as info:
        load_runs(frame, groups=["famly"])
    assert "Did you mean 'family'?" in str(info.value)
    assert "'N', 'D', 'loss', 'family'" in str(info.value)


def test_group_values_become_strings():
    runs = load_runs(make_frame(width=[128, 256, 128, 256]), groups="width")
    assert runs["width"].values.tolist() == ["128", "256", "128", "256"]
    assert json.loads(runs.attrs["groups"]) == ["width"]


def test_missing_group_value_names_row():
    with pytest.raises(RunsTableError, match="group column 'fam' has missing values in row 2"):
        load_runs(make_frame(fam=["a", None, "b", "b"]), groups=["fam"])


def test_canonical_group_refused():
    with pytest.raises(RunsTableError, match="group column 'N' is a canonical"):
        load_runs(make_frame(), groups=["N"])


@pytest.mark.parametrize("name", ["run", "chain", "draw", "point"])
def test_column_named_like_a_dimension_is_stored_aside(name):
    runs = load_runs(make_frame(**{name: ["a", "b", "c", "d"]}))
    assert stored_column(name) == f"{name}_label"
    assert runs[f"{name}_label"].values.tolist() == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(runs["run"].values, np.arange(4))


def test_group_named_run_is_stored_aside():
    runs = load_runs(make_frame(run=["a", "a", "b", "b"]), groups=["run"])
    assert runs["run_label"].values.tolist() == ["a", "a", "b", "b"]
    assert json.loads(runs.attrs["groups"]) == ["run_label"]


def test_column_and_its_stored_name_both_present_refused():
    frame = make_frame(run=["a", "b", "c", "d"], run_label=["w", "x", "y", "z"])
    with pytest.raises(RunsTableError, match="'run' and 'run_label'"):
        load_runs(frame)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["N", "run", "run_id"], "run"),
        (["N", "run_label"], "run_label"),
        (["N", "name", "run_name"], "run_name"),
        (["N", "source_file"], "source_file"),
        (["N", "D"], None),
    ],
)
def test_find_run_id(columns, expected):
    assert find_run_id(columns) == expected


def test_last_per_run_finds_run_column():
    frame = pd.DataFrame(
        {
            "run": ["a", "a", "b", "b"],
            "N": [1e8, 1e8, 2e8, 2e8],
            "D": [1e9, 2e9, 1e9, 2e9],
            "step": [1, 2, 1, 2],
            "loss": [3.5, 3.2, 3.3, 3.0],
        }
    )
    runs = load_runs(frame, last_per_run=True)
    assert runs["loss"].values.tolist() == [3.2, 3.0]
    with pytest.raises(RunsTableError, match="none is named 'run' or 'run_id'"):
        load_runs(frame.rename(columns={"run": "id"}), last_per_run=True)


def test_loss_above_max_refused():
    with pytest.raises(RunsTableError, match=r"above 20 nats/token in row 2 \(value 35\.0\)"):
        load_runs(make_frame(loss=[3.2, 35.0, 2.8, 2.7]))
    assert load_runs(make_frame(loss=[3.2, 35.0, 2.8, 2.7]), max_loss=40).sizes["run"] == 4


def test_values_with_units_named():
    frame = make_frame(N=["1e8", "2e8", "400M", "8e8"])
    with pytest.raises(RunsTableError, match=r"column 'N' mixes numbers with units: value '400M'"):
        load_runs(frame)


def test_wrong_delimiter_named(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N;D;loss\n1e8;2e9;3.0\n", encoding="utf-8")
    with pytest.raises(RunsTableError, match="looks separated by ';'"):
        load_runs(path)


def test_duplicate_column_names_refused():
    frame = pd.concat([make_frame(), make_frame()[["N"]]], axis=1)
    with pytest.raises(RunsTableError, match="duplicate column names: 'N'"):
        load_runs(frame)


# --------------------------------------------------------------------------------------------
# check_enough_points


def test_check_enough_points_passes():
    runs = load_runs(make_frame())
    assert check_enough_points(runs, ["N", "D"], 3, "chinchilla") is None


def test_check_enough_points_message():
    runs = load_runs(make_frame())
    expected = (
        "law 'chinchilla' has 6 parameters and needs at least 7 distinct (N, D) points; "
        "the runs table has 4."
    )
    with pytest.raises(RunsTableError, match=re.escape(expected)):
        check_enough_points(runs, ["N", "D"], 6, "chinchilla")


def test_check_enough_points_counts_distinct_points():
    # Six rows but only two distinct N: repeated points do not identify more parameters.
    frame = pd.DataFrame(
        {"N": [1e8, 1e8, 1e8, 2e8, 2e8, 2e8], "D": [1.0, 2, 3, 4, 5, 6], "loss": [3.0] * 6}
    )
    runs = load_runs(frame)
    with pytest.raises(RunsTableError, match="at least 3 distinct N points; the runs table has 2"):
        check_enough_points(runs, ["N"], 2, "kaplan_n")
    check_enough_points(runs, ["N", "D"], 5, "chinchilla")  # six distinct (N, D): enough


def test_check_enough_points_missing_input():
    runs = load_runs(make_frame())
    with pytest.raises(RunsTableError, match=r"no column 'C' \(needed by law 'kaplan_c'\)"):
        check_enough_points(runs, ["C"], 2, "kaplan_c")


def test_group_labels_that_look_like_numbers_are_kept_as_written(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("N,loss,budget\n1e6,3.0,6e18\n1e7,2.8,01\n1e8,2.6,6e18\n")
    runs = load_runs(path, groups=["budget"])
    assert list(runs["budget"].values) == ["6e18", "01", "6e18"]


# --------------------------------------------------------------------------------------------
# run ids of learning-curve tables


def curve_frame(id_column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            id_column: ["a", "a", "b", "b"],
            "N": [1e8, 1e8, 4e8, 4e8],
            "step": [100, 200, 100, 200],
            "loss": [4.1, 3.6, 3.9, 3.4],
        }
    )


@pytest.mark.parametrize("column", ["run", "run_id", "run_name", "name"])
def test_load_curves_finds_the_run_id_column(column):
    from bayescale.runs.curves import load_curves

    table = load_curves(curve_frame(column))
    stored = table.attrs["run_id"]
    assert stored == stored_column(column)
    assert table[stored].values.tolist() == ["a", "a", "b", "b"]
    assert table.sizes["run"] == 4
    # Naming it explicitly, by the user's name, gives the same table.
    assert load_curves(curve_frame(column), run_id=column).identical(table)


def test_load_curves_without_a_run_id_column_says_which_names_it_looks_for():
    from bayescale.runs.curves import load_curves

    with pytest.raises(RunsTableError, match="none is named 'run', 'run_id'"):
        load_curves(curve_frame("id"))
