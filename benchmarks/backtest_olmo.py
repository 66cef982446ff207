"""Leave-largest-out backtests on the real OLMo ladder, with and without a discrepancy term.

Run: ``.venv/bin/python benchmarks/backtest_olmo.py`` (``--quick``: kaplan_nd only; ``--law``
to choose; ``--eval SET`` for another held-out set than c4_en). Writes
``benchmarks/results/backtest_olmo.json`` (``backtest_olmo_<eval>[_<laws>].json`` for other
evals or laws) and prints a table.

Data: the 24 final checkpoints of the OLMo ladder (Bhagia et al. 2024; 190M-1.3B parameters x
0.5-10 x Chinchilla tokens, with reruns of the 1xC runs), read from ``../shared/data`` through
the ordinary runs API: the model size comes from the file name (``file_pattern``) and is mapped
to non-embedding parameters (``value_map``, numbers from OLMo-ladder's MODEL_PARAMS as recorded
in SOURCE.md), tokens from ``throughput/total_tokens``, and each run's last checkpoint is kept
(``last_per_run``). ``C = 6 N D``.

Splits (``holdout_top`` runs largest in ``by`` are held out, the rest fitted):

* ``N``, 6: predict the 1.3B runs from 190M-760M (0.23 decades beyond in N);
* ``N``, 12: predict 760M and 1.3B from 190M and 370M (0.54 decades);
* ``C``, 6: the six largest-compute runs;
* ``D``, 6: the six runs with the most tokens.

Each split is fitted with the default model (no discrepancy), ``discrepancy="gp"`` and
``discrepancy="distance"``; held-out runs are scored by coverage of the 94 % observed-loss
HDI, its width, the interval score (Gneiting & Raftery 2007; lower is better) and the log score
(higher is better). The lack-of-fit check (residual vs rerun scatter) is reported per fit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import RESULTS, SHARED_DATA, describe_machine, quiet, shared_name

from bayescale.core.files import atomic_write_text
from bayescale.questions.backtest import backtest

OLMO_DIR = SHARED_DATA / "olmo-ladder" / "ladder-runs"
#: Non-embedding parameters per size label (OLMo-ladder src/scaling/utils.py MODEL_PARAMS).
OLMO_N = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840}
SPLITS = (("N", 6), ("N", 12), ("C", 6), ("D", 6))
VARIANTS = (None, "gp", "distance")
PROB = 0.94
SEED = 0


def reader(eval_set: str) -> dict[str, Any]:
    """Options of ``load_runs`` for the OLMo ladder directory."""
    return {
        "file_pattern": r"^(?P<size>[^-]+)-(?P<mult>[0-9.]+)xC(?:-(?P<rerun>rerun))?$",
        "value_map": {"size": OLMO_N},
        "columns": {
            "N": "size",
            "D": "throughput/total_tokens",
            "loss": f"eval/{eval_set}-validation/CrossEntropyLoss",
            "step": "_step",
        },
        "last_per_run": "source_file",
        "derive_compute": True,
    }


def run(laws: list[str], eval_set: str) -> list[dict[str, Any]]:
    rows = []
    for law in laws:
        for by, k in SPLITS:
            for variant in VARIANTS:
                start = time.perf_counter()
                with quiet():
                    result = backtest(
                        OLMO_DIR,
                        law,
                        holdout_top=k,
                        by=by,
                        prob=PROB,
                        seed=SEED,
                        discrepancy=variant,
                        **reader(eval_set),
                    )
                wall = time.perf_counter() - start
                held = result.held_out
                row = {
                    "eval": eval_set,
                    "law": law,
                    "by": by,
                    "holdout_top": k,
                    "discrepancy": variant or "none",
                    **result.totals,
                    "max_extrapolation_decades": float(
                        held[[c for c in held.columns if c.startswith("extrapolation_")]]
                        .abs()
                        .max()
                        .max()
                    ),
                    "divergences": result.fit.diagnostics.divergences,
                    "lack_of_fit": result.lack_of_fit.to_dict(),
                    "runs": result.to_dict()["runs"],
                    "wall_s": wall,
                }
                rows.append(row)
                print(_line(row), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['law']:<11}{row['by']:>3}{row['holdout_top']:>4} {row['discrepancy']:<9}"
        f"{row['coverage']:>9.2f}{row['mean_width']:>9.4f}{row['mean_interval_score']:>10.4f}"
        f"{row['mean_log_score']:>10.3f}{row['divergences']:>6}{row['wall_s']:>7.0f}s"
    )


def totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over splits of each law and variant: the numbers the default is decided on."""
    out = []
    keys = sorted({(r["law"], r["discrepancy"]) for r in rows})
    for law, variant in keys:
        sub = [r for r in rows if r["law"] == law and r["discrepancy"] == variant]
        n = sum(r["n_held_out"] for r in sub)
        out.append(
            {
                "law": law,
                "discrepancy": variant,
                "splits": len(sub),
                "held_out": n,
                "coverage": sum(r["coverage"] * r["n_held_out"] for r in sub) / n,
                "mean_interval_score": sum(r["mean_interval_score"] for r in sub) / len(sub),
                "mean_log_score": sum(r["mean_log_score"] for r in sub) / len(sub),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="kaplan_nd only")
    parser.add_argument("--law", action="append", help="law(s) to backtest (default: both)")
    parser.add_argument("--eval", default="c4_en", help="eval set (default c4_en)")
    args = parser.parse_args()
    laws = args.law or (["kaplan_nd"] if args.quick else ["kaplan_nd", "chinchilla"])
    print(
        f"OLMo ladder, eval {args.eval}, {PROB:.0%} observed-loss HDI of held-out runs\n"
        f"{'law':<11}{'by':>3}{'K':>4} {'discrep.':<9}{'coverage':>9}{'width':>9}"
        f"{'int.score':>10}{'log score':>10}{'div':>6}{'wall':>8}"
    )
    rows = run(laws, args.eval)
    summary = totals(rows)
    print("\nmean over splits (interval score: lower is better; log score: higher is better)")
    for t in summary:
        print(
            f"{t['law']:<11}{t['discrepancy']:<10}coverage {t['coverage']:.2f} of "
            f"{t['held_out']}   interval score {t['mean_interval_score']:.4f}   "
            f"log score {t['mean_log_score']:.3f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = args.quick or args.law
    suffix = "" if args.eval == "c4_en" and not partial else f"_{args.eval}"
    suffix += "_" + "_".join(laws) if partial else ""
    out = Path(RESULTS) / f"backtest_olmo{suffix}.json"
    doc = {
        "data": shared_name(OLMO_DIR),
        "eval": args.eval,
        "prob": PROB,
        "seed": SEED,
        "splits": rows,
        "totals": summary,
        "machine": describe_machine(),
    }
    atomic_write_text(out, json.dumps(doc, indent=2, default=float) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
