"""Real-data backtests on every public table, bayescale against two baselines.

Run: ``/tmp/bench/bin/python benchmarks/backtest_real.py`` (``--table gemstones|rnsl|olmo``
to run one table, ``--rnsl lang|vision`` for one RNSL table, ``--rnsl-model M`` for some
vision models in that order, ``--resume`` to reuse finished RNSL curves, ``--quick`` for
reduced draws). The ``simple-scaling-laws`` baseline runs
only where that package imports (it is never a project dependency: install it beside the
project as in ``benchmarks/README.md``); otherwise its rows say "not installed". Writes
``benchmarks/results/backtest_real_<table>.json`` and prints one line per split and method.

Every table is read through the ordinary runs API (``bayescale.runs.table.load_runs`` via
:func:`bayescale.questions.backtest.backtest`); the only preprocessing is the user's own unit work
in pandas, stated below. Each split is fitted on the kept runs and scored on the held-out ones
(94 % observed-loss interval: coverage, width, interval score, log score) by

* ``bayescale``: the default model, and ``bayescale+distance`` with
  ``discrepancy="distance"`` (scatter growing with the distance from the data); with
  ``--student-t`` also ``bayescale+student_t`` (``likelihood="student_t"``);
* ``least_squares``: Huber loss on log loss, L-BFGS from a grid of starts, bootstrap over runs
  plus resampled residuals (:func:`bayescale.fitting.leastsq.fit_least_squares`, the Chinchilla /
  Epoch procedure);
* ``simple_scaling_laws``: the PyPI package's closest law family (``separable-power`` for
  ``chinchilla`` and ``power_d_e``, ``kaplan-joint-power`` for ``kaplan_nd``), its
  wild-bootstrap ``new-run`` predictive draws (one training run per row).

Baselines are scored from their draws by :func:`bayescale.questions.backtest.score_draws` (HDI,
width, interval score, and a log score from a kernel density of the draws).

Tables:

* **Gemstones** (McLeish et al. 2025). ``val``: the annealed end points
  (``wandb_df_for_fitting_cool_end.jsonl``, 20 models x 10 token counts, 11-110 B tokens);
  ``fineweb_edu`` and ``dclm``: the same 22 models' constant-LR ("hot") checkpoints
  evaluated on those sets, every third of the 10 B-token grid (30-330 B tokens); not
  annealed, so a point is not the loss of a run of that length (a caveat for an L(N, D) law).
  ``N`` is NON-embedding, ``params_active_precise - 50304 * width`` (the authors' own
  conversion), so it matches bayescale's canonical ``N``. Splits: the 3 largest models
  (non-embedding 1.80-1.85 B, 0.29 decades beyond 0.95 B) and the largest 30 % of token
  counts. Laws ``chinchilla`` and ``kaplan_nd``.
* **Revisiting-NSL** (Alabdulmohsin et al. 2022), ``benchmark.lang.csv``: exact duplicate
  rows dropped, one learning curve per (Domain, Task, Model), ``power_d_e`` with
  D = ``Seen Examples`` fitted per curve on ``Training == 1`` and scored on the authors'
  held-out tail ``Training == 0``. ``benchmark.vision.csv`` likewise (72 curves: 6 models x
  12 few-shot tasks, the loss an n-shot error rate in (0, 1)), its held-out tails thinned to
  at most 16 points per curve, evenly spaced in log D (they hold 3-710 checkpoints each);
  totals are pooled per domain for language and per model for vision. The results file is
  rewritten after every curve and records how many curves and which models it covers.
* **OLMo ladder**: the splits and eval sets of ``benchmarks/backtest_olmo.py`` (whose
  bayescale rows, with ``gp`` and ``distance`` variants, are copied from its results files)
  with both baselines added (``--olmo-eval SET`` for some eval sets). The file is rewritten
  after every split and finished baseline rows are reused, so an interrupted run resumes.

The full run took about 50 minutes on 2 shared cores (RNSL 10, Gemstones 14, OLMo 25).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from backtest_olmo import OLMO_DIR, SPLITS
from backtest_olmo import reader as olmo_reader
from common import RESULTS, SHARED_DATA, describe_machine, quiet, shared_name

from bayescale.core.files import atomic_write_text
from bayescale.laws.base import get_law
from bayescale.questions.backtest import Backtest, backtest

DATA = SHARED_DATA
GEMSTONES = DATA / "gemstones"
RNSL = DATA / "revisiting-nsl-benchmark"
PROB = 0.94
SEED = 0
#: Gemstones vocabulary size: embedding parameters are 50304 x width (SOURCE.md).
VOCAB = 50304
GEM_FILES = {
    "val": "wandb_df_for_fitting_cool_end.jsonl",
    "fineweb_edu": "fineweb_edu_losses_combined.jsonl",
    "dclm": "fineweb_dclm_losses_combined.jsonl",
}
GEM_LAWS = ("chinchilla", "kaplan_nd")
#: Largest models held out, and the fraction of the largest token counts held out.
GEM_TOP_MODELS = 3
GEM_TOP_D_FRACTION = 0.3
BAYES_VARIANTS: dict[str, dict[str, Any]] = {
    "bayescale": {"discrepancy": None},
    "bayescale+distance": {"discrepancy": "distance"},
}
#: Opt-in (``--student-t``): heavy-tailed residuals, for tables whose misfit has outliers.
STUDENT_T = {"bayescale+student_t": {"likelihood": "student_t"}}
#: simple-scaling-laws family closest to each bayescale law.
SSL_FAMILY = {
    "chinchilla": "separable-power",
    "kaplan_nd": "kaplan-joint-power",
    "power_d_e": "separable-power",
    "power_n_e": "separable-power",
}
SSL_PREDICTOR = {"N": "model_size__n_params", "D": "dataset_size__n_tokens"}
SSL_TARGET = "test_loss__loss"


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------
class SimpleScalingLawsFit:
    """simple-scaling-laws fitted to a runs table, with bayescale's ``predictive_draws``."""

    def __init__(self, model: Any, inputs: tuple[str, ...], n_runs: int) -> None:
        self.model = model
        self.inputs = inputs
        self.n_runs = n_runs

    def predictive_draws(
        self, inputs: Mapping[str, Any], *, n: int = 1000, seed: int = 0
    ) -> np.ndarray:
        """Draws of one new run's loss, shape (point, n): the package's ``new-run`` kind."""
        import polars as pl

        frame = pl.DataFrame({SSL_PREDICTOR[k]: np.asarray(inputs[k], float) for k in self.inputs})
        log_x = self.model.fitting_predictors(self.model.prepare_points(frame))
        rng = np.random.default_rng(seed)
        draws = self.model.target_draws(SSL_TARGET, log_x, kind="new-run", rng=rng).T
        if draws.shape[1] != n:
            draws = draws[:, rng.integers(0, draws.shape[1], n)]
        return draws


def fit_simple_scaling_laws(
    runs: Any, law: Any, *, seed: int = 0, n_draws: int = 1000
) -> SimpleScalingLawsFit:
    """Fit the simple-scaling-laws family closest to ``law``; one training run per row."""
    import polars as pl
    from simple_scaling_laws import fit

    law = get_law(law)
    if law.name not in SSL_FAMILY:
        raise ValueError(f"no simple-scaling-laws family for {law.name}")
    n = int(runs.sizes["run"])
    columns = {"training_run_id": [f"run{i}" for i in range(n)]}
    columns |= {SSL_PREDICTOR[k]: runs[k].values.astype(float) for k in law.inputs}
    columns[SSL_TARGET] = runs["loss"].values.astype(float)
    model = fit(pl.DataFrame(columns), law=SSL_FAMILY[law.name], n_draws=n_draws, seed=seed)
    return SimpleScalingLawsFit(model, law.inputs, n)


fit_simple_scaling_laws.__name__ = "simple_scaling_laws"


def methods(
    bayes: bool = True, student_t: bool = False
) -> dict[str, tuple[Callable[..., Any] | None, dict | str]]:
    """Method name -> (``method`` of :func:`backtest`, its keyword arguments) or a reason."""
    out: dict[str, tuple[Callable[..., Any] | None, dict | str]] = {}
    if bayes:
        out |= {name: (None, kwargs) for name, kwargs in BAYES_VARIANTS.items()}
    if bayes and student_t:
        out |= {name: (None, kwargs) for name, kwargs in STUDENT_T.items()}
    try:
        from bayescale.fitting.leastsq import fit_least_squares

        out["least_squares"] = (fit_least_squares, {"n_bootstrap": 500})
    except ImportError as error:
        out["least_squares"] = (None, f"unavailable: {error}")
    try:
        import simple_scaling_laws  # noqa: F401

        out["simple_scaling_laws"] = (fit_simple_scaling_laws, {})
    except ImportError:
        out["simple_scaling_laws"] = (None, "not installed")
    return out


# --------------------------------------------------------------------------------------------
# One split, every method
# --------------------------------------------------------------------------------------------
def summarise(result: Backtest, method: str, wall: float) -> dict[str, Any]:
    """One JSON row: totals, extrapolation, diagnostics and per-run scores."""
    held = result.held_out
    beyond = held[[c for c in held.columns if c.startswith("extrapolation_")]].abs()
    fit = result.fit
    diagnostics = getattr(fit, "diagnostics", None)
    return {
        "method": method,
        "status": "ok",
        **result.totals,
        "max_extrapolation_decades": float(beyond.max().max()),
        "divergences": None if diagnostics is None else diagnostics.divergences,
        "n_failed_refits": getattr(fit, "n_failed", None),
        "lack_of_fit": None if result.lack_of_fit is None else result.lack_of_fit.to_dict(),
        "runs": result.to_dict()["runs"],
        "wall_s": wall,
    }


def run_split(
    source: Any,
    law: str,
    split: Mapping[str, Any],
    label: Mapping[str, Any],
    options: Mapping[str, Any],
    chosen: Mapping[str, tuple[Callable[..., Any] | None, dict | str]],
    sampling: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Backtest one split with every method; failures of one method are recorded, not fatal."""
    rows = []
    for name, (method, kwargs) in chosen.items():
        row = {**label, "law": law, "method": name}
        if isinstance(kwargs, str):
            rows.append(row | {"status": kwargs})
            print(_line(rows[-1]), flush=True)
            continue
        extra = dict(kwargs) if method is not None else {**sampling, **kwargs}
        start = time.perf_counter()
        try:
            with quiet():
                result = backtest(
                    source,
                    law,
                    **split,
                    prob=PROB,
                    seed=SEED,
                    method=method,
                    **options,
                    **extra,
                )
        except Exception as error:  # a failed method is a result, not a crash
            rows.append(row | {"status": f"failed: {type(error).__name__}: {error}"})
        else:
            rows.append(row | summarise(result, name, time.perf_counter() - start))
        print(_line(rows[-1]), flush=True)
    return rows


def _line(row: Mapping[str, Any]) -> str:
    head = f"{row.get('eval', ''):<14}{row['law']:<11}{row['split']:<10}{row['method']:<21}"
    if row["status"] != "ok":
        return head + row["status"][:80]
    return head + (
        f"{row['coverage']:>6.2f} of {row['n_held_out']:<4}{row['mean_width']:>9.4f}"
        f"{row['mean_interval_score']:>10.4f}{row['mean_log_score']:>9.2f}{row['wall_s']:>7.0f}s"
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
def gemstones_table(eval_set: str) -> pd.DataFrame:
    """Gemstones runs with non-embedding ``N`` (the user's unit conversion, in pandas)."""
    frame = pd.read_json(GEMSTONES / GEM_FILES[eval_set], lines=True)
    frame["params_nonembedding"] = frame["params_active_precise"] - VOCAB * frame["width"]
    if eval_set != "val":
        # Hot checkpoints every 10 B tokens: keep every third (30, 60, ..., 330 B), 11 per
        # model like the annealed file; neighbours of a constant-LR run are nearly the same
        # point, and 770 rows would multiply the sampling time for little information.
        grid = np.sort(frame["tokens"].unique())
        frame = frame[frame["tokens"].isin(grid[2::3])].reset_index(drop=True)
    return frame


GEM_COLUMNS = {"N": "params_nonembedding", "D": "tokens", "loss": "final_loss"}


def gemstones_splits(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Largest models, and largest token counts, as ``holdout_top`` counts ranked by N / D."""
    sizes = np.sort(frame["params_nonembedding"].unique())
    tokens = np.sort(frame["tokens"].unique())
    top_d = tokens[-round(GEM_TOP_D_FRACTION * len(tokens)) :]
    return {
        "largest_N": {
            "holdout_top": int(frame["params_nonembedding"].isin(sizes[-GEM_TOP_MODELS:]).sum()),
            "by": "N",
        },
        "largest_D": {"holdout_top": int(frame["tokens"].isin(top_d).sum()), "by": "D"},
    }


def run_gemstones(
    chosen: Mapping, sampling: Mapping, evals: list[str], laws: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for eval_set in evals:
        frame = gemstones_table(eval_set)
        for law in laws:
            for split_name, split in gemstones_splits(frame).items():
                label = {"table": "gemstones", "eval": eval_set, "split": split_name}
                options = {"columns": GEM_COLUMNS}
                rows += run_split(frame, law, split, label, options, chosen, sampling)
    return rows


def rnsl_curves(name: str = "lang") -> dict[tuple[str, str, str], pd.DataFrame]:
    """Learning curves of the Revisiting-NSL benchmark, exact duplicates dropped."""
    frame = pd.read_csv(RNSL / f"benchmark.{name}.csv").drop_duplicates()
    return {
        key: curve.reset_index(drop=True)
        for key, curve in frame.groupby(["Domain", "Task", "Model"], sort=True)
    }


RNSL_TABLES = ("lang", "vision")
RNSL_OPTIONS = {"columns": {"D": "Seen Examples", "loss": "Loss"}}
RNSL_SPLIT = {"holdout": {"Training": 0}, "by": "D"}
#: Column the totals are pooled by: lang mixes units across domains; vision is one domain
#: (image classification error rates) whose six models are the natural groups.
RNSL_POOL = {"lang": "Domain", "vision": "Model"}
#: Held-out points kept per vision curve. Its tails are dense checkpoint sequences (3-710
#: points, 15 000 in all) of one run; kept whole, a few long curves would dominate the pooled
#: scores and the results file would be ~30 MB.
RNSL_MAX_HELD_OUT = {"lang": None, "vision": 16}


def thin_tail(curve: pd.DataFrame, keep: int | None) -> pd.DataFrame:
    """All training rows and at most ``keep`` held-out rows, evenly spaced in log D.

    The last held-out point (the longest extrapolation) is always kept.
    """
    held = curve[curve["Training"] == 0].sort_values("Seen Examples")
    if keep is None or len(held) <= keep:
        return curve
    log_d = np.log(held["Seen Examples"].to_numpy())
    targets = np.linspace(log_d[0], log_d[-1], keep)
    picked = np.unique(np.abs(log_d[:, None] - targets[None, :]).argmin(axis=0))
    kept = pd.concat([curve[curve["Training"] == 1], held.iloc[picked]])
    return kept.reset_index(drop=True)


def run_rnsl(
    chosen: Mapping,
    sampling: Mapping,
    name: str = "lang",
    models: list[str] | None = None,
    save: Callable[[list[dict[str, Any]]], Any] | None = None,
    resume: bool = False,
) -> list[dict[str, Any]]:
    """Every curve of one RNSL table, model by model (so a partial run has whole models).

    ``models`` restricts the models and sets their order; ``save`` is called with the rows
    so far after each curve, so an interrupted run keeps what it finished; with ``resume``,
    curves whose rows are all in ``backtest_real_rnsl_<name>.json`` are reused, not rerun.
    """
    curves = rnsl_curves(name)
    rank = {m: i for i, m in enumerate(models or sorted({key[2] for key in curves}))}
    order = sorted(
        (key for key in curves if key[2] in rank), key=lambda key: (key[0], rank[key[2]], key[1])
    )
    previous = RESULTS / f"backtest_real_rnsl_{name}.json"
    finished: dict[str, list[dict[str, Any]]] = {}
    if resume and previous.exists():
        for r in json.loads(previous.read_text(encoding="utf-8"))["splits"]:
            finished.setdefault(r["curve"], []).append(r)
    rows = []
    for domain, task, model in order:
        label = {
            "table": f"rnsl_{name}",
            "eval": domain if RNSL_POOL[name] == "Domain" else model,
            "split": "authors",
            "curve": f"{task} | {model}",
        }
        done = finished.get(label["curve"], [])
        if {r["method"] for r in done} >= set(chosen):
            rows += [r for r in done if r["method"] in chosen]
            continue
        curve = thin_tail(curves[domain, task, model], RNSL_MAX_HELD_OUT[name])
        rows += run_split(curve, "power_d_e", RNSL_SPLIT, label, RNSL_OPTIONS, chosen, sampling)
        if save is not None:
            save(rows)
    return rows


def run_olmo(
    chosen: Mapping, evals: list[str] | None, save: Callable[[list[dict[str, Any]]], Any]
) -> list[dict[str, Any]]:
    """Baselines on the OLMo splits; bayescale rows copied from backtest_olmo*.json.

    ``evals`` restricts the eval sets (default: every one with bayescale results); ``save``
    is called with the rows so far after each split, so a long run keeps what it finished,
    and baseline rows already in ``backtest_real_olmo.json`` are reused, not recomputed.
    """
    previous = RESULTS / "backtest_real_olmo.json"
    finished = {}
    if previous.exists():
        for r in json.loads(previous.read_text(encoding="utf-8"))["splits"]:
            if r["status"] == "ok" and "from" not in r:
                finished[r["eval"], r["law"], r["split"], r["method"]] = r
    rows = []
    for path in sorted(RESULTS.glob("backtest_olmo*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["splits"] = [r for r in doc["splits"] if evals is None or r["eval"] in evals]
        for old in doc["splits"]:
            method = "bayescale" + (
                "" if old["discrepancy"] == "none" else f"+{old['discrepancy']}"
            )
            rows.append(
                {
                    **old,
                    "table": "olmo",
                    "split": f"{old['by']}{old['holdout_top']}",
                    "method": method,
                    "status": "ok",
                    "from": path.name,
                }
            )
        done = {(r["eval"], r["law"]) for r in doc["splits"]}
        for eval_set, law in sorted(done):
            for by, k in SPLITS:
                label = {"table": "olmo", "eval": eval_set, "split": f"{by}{k}", "by": by}
                split = {"holdout_top": k, "by": by}
                done = {m: finished.get((eval_set, law, label["split"], m)) for m in chosen}
                rows += [row for row in done.values() if row is not None]
                todo = {m: v for m, v in chosen.items() if done[m] is None}
                rows += run_split(
                    OLMO_DIR, law, split, label, olmo_reader(eval_set), todo, sampling={}
                )
                save(rows)
    return rows


# --------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------
def aggregate(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Pool the held-out runs of finished rows by ``keys``: coverage and mean scores per run."""
    out = []
    finished = [r for r in rows if r["status"] == "ok"]
    groups = sorted({tuple(r.get(k) for k in keys) for r in finished}, key=str)
    for group in groups:
        sub = [r for r in finished if tuple(r.get(k) for k in keys) == group]
        runs = [run for r in sub for run in r["runs"]]
        out.append(
            {
                **dict(zip(keys, group, strict=True)),
                "splits": len(sub),
                "held_out": len(runs),
                "coverage": float(np.mean([run["inside"] for run in runs])),
                "mean_width": float(np.mean([run["width"] for run in runs])),
                "mean_interval_score": float(np.mean([run["interval_score"] for run in runs])),
                "mean_log_score": float(np.mean([run["log_score"] for run in runs])),
            }
        )
    return out


def write(
    table: str,
    rows: list[dict[str, Any]],
    keys: tuple[str, ...],
    note: str,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    doc = {
        "table": table,
        "data": note,
        **(extra or {}),
        "prob": PROB,
        "seed": SEED,
        "splits": rows,
        "totals": aggregate(rows, keys),
        "machine": describe_machine(),
    }
    out = RESULTS / f"backtest_real_{table}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(doc, indent=2, default=_json) + "\n")
    print(f"wrote {out}", flush=True)
    return out


def write_rnsl(
    name: str, rows: list[dict[str, Any]], models: list[str] | None, sampling: Mapping
) -> Path:
    """``backtest_real_rnsl_<name>.json``, saying how much of the table the rows cover."""
    curves = rnsl_curves(name)
    done = {r["curve"] for r in rows}
    keep = RNSL_MAX_HELD_OUT[name]
    extra = {
        "curves_run": len(done),
        "curves_in_table": len(curves),
        "models_run": sorted({r["curve"].split(" | ")[1] for r in rows}),
        "models_in_table": sorted({key[2] for key in curves}),
        "sampling": dict(sampling) or {"draws": 1000, "tune": 1000, "chains": 4},
        "held_out_per_curve": "all" if keep is None else f"at most {keep}, even in log D",
    }
    if models is not None:
        extra["models_requested"] = models
    note = f"{shared_name(RNSL)}/benchmark.{name}.csv"
    return write(f"rnsl_{name}", rows, ("eval", "method"), note, extra)


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return float(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--table", action="append", choices=("gemstones", "rnsl", "olmo"), help="default: all"
    )
    parser.add_argument("--eval", action="append", choices=tuple(GEM_FILES), help="Gemstones")
    parser.add_argument("--law", action="append", choices=GEM_LAWS, help="Gemstones laws")
    parser.add_argument(
        "--olmo-eval", action="append", help="OLMo eval set(s) (default: all with results)"
    )
    parser.add_argument(
        "--rnsl", action="append", choices=RNSL_TABLES, help="RNSL table(s) (default: both)"
    )
    parser.add_argument(
        "--rnsl-model",
        action="append",
        metavar="MODEL",
        help="RNSL model(s), run in this order (default: all, sorted)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="RNSL: reuse curves finished in the results file"
    )
    parser.add_argument("--quick", action="store_true", help="500 draws x 2 chains")
    parser.add_argument(
        "--student-t", action="store_true", help="also bayescale with a Student-t likelihood"
    )
    args = parser.parse_args(argv)
    tables = args.table or ["gemstones", "rnsl", "olmo"]
    sampling = {"draws": 500, "tune": 500, "chains": 2} if args.quick else {}
    chosen = methods(student_t=args.student_t)
    print(
        f"{'eval':<14}{'law':<11}{'split':<10}{'method':<21}{'coverage':>14}{'width':>9}"
        f"{'int.score':>10}{'log sc.':>9}{'wall':>8}"
    )
    if "gemstones" in tables:
        evals = args.eval or list(GEM_FILES)
        rows = run_gemstones(chosen, sampling, evals, args.law or list(GEM_LAWS))
        write(
            "gemstones",
            rows,
            ("eval", "law", "method"),
            f"{shared_name(GEMSTONES)}: {', '.join(GEM_FILES[e] for e in evals)}",
        )
    if "rnsl" in tables:
        for name in args.rnsl or list(RNSL_TABLES):
            run_rnsl(
                chosen,
                sampling,
                name,
                args.rnsl_model,
                lambda rows, name=name: write_rnsl(name, rows, args.rnsl_model, sampling),
                resume=args.resume,
            )
    if "olmo" in tables:
        note = shared_name(OLMO_DIR)
        keys = ("eval", "law", "method")
        run_olmo(methods(bayes=False), args.olmo_eval, lambda rows: write("olmo", rows, keys, note))


if __name__ == "__main__":
    sys.exit(main())
