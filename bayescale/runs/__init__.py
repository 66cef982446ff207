"""Runs tables: reading, checking and canonical units (the first stage of the flow)."""

from bayescale.core.lazy import lazy_exports

_EXPORTS = {
    "CANONICAL": "bayescale.runs.columns",
    "PF_DAY_FLOPS": "bayescale.runs.table",
    "RUN_ID_COLUMNS": "bayescale.runs.columns",
    "bundled_dir": "bayescale.runs.datasets",
    "check_enough_points": "bayescale.runs.table",
    "dataset_info": "bayescale.runs.datasets",
    "find_run_id": "bayescale.runs.columns",
    "list_datasets": "bayescale.runs.datasets",
    "load_runs": "bayescale.runs.table",
    "parse_columns": "bayescale.runs.columns",
    "replicate_sets": "bayescale.runs.table",
    "stored_column": "bayescale.runs.columns",
    "load_curves": "bayescale.runs.curves",
    "thin_curves": "bayescale.runs.curves",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
