"""Does the default fit sample cleanly on every real table? (divergences, R-hat, ESS)

Every law with an irreducible loss is fitted at default settings (4 chains x 1000 draws after
1000 tuning steps, seed 0) to every real table in ``../shared/data`` it applies to:

* OLMo ladder, each of its 11 eval sets: ``chinchilla`` (24 final checkpoints, reruns kept);
* Gemstones, each file as read by ``backtest_real.py``: ``chinchilla``;
* Revisiting Neural Scaling Laws, each learning curve of ``lang`` and ``vision`` (every row):
  ``power_d_e`` with ``D = Seen Examples``.

The target (issue "Bands that hold on real ladders", part 2): at least 98 % of fits with no
divergence and max R-hat <= 1.01, none above 1.05. Results go to
``benchmarks/results/real_sampling.json`` and ``.md``; the fits are not saved.

    .venv/bin/python benchmarks/real_sampling.py                 # everything (~30 min)
    .venv/bin/python benchmarks/real_sampling.py --table olmo    # one table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from backtest_olmo import OLMO_DIR
from backtest_olmo import reader as olmo_reader
from backtest_real import GEM_COLUMNS, GEM_FILES, RNSL_OPTIONS, gemstones_table, rnsl_curves
from common import RESULTS, describe_machine, quiet

import bayescale as bs
from bayescale.core.files import atomic_write_text
from bayescale.fitting.result import RHAT_MAX

OLMO_EVALS = (
    "c4_en",
    "dolma_books",
    "dolma_common-crawl",
    "dolma_pes2o",
    "dolma_reddit",
    "dolma_stack",
    "dolma_wiki",
    "ice",
    "m2d2_s2orc",
    "pile",
    "wikitext_103",
)
#: R-hat above which a fit counts as failed outright, not merely unclean.
RHAT_FAILED = 1.05
TABLES = ("olmo", "gemstones", "rnsl_lang", "rnsl_vision")


def jobs(tables: list[str]) -> Iterator[tuple[dict[str, str], Any, str, dict[str, Any]]]:
    """``(label, runs, law, load options)`` of every fit, in a fixed order."""
    if "olmo" in tables:
        for eval_set in OLMO_EVALS:
            options = olmo_reader(eval_set) | {"allow_replicates": True}
            yield {"table": "olmo", "data": eval_set}, OLMO_DIR, "chinchilla", options
    if "gemstones" in tables:
        for eval_set in GEM_FILES:
            frame = gemstones_table(eval_set)
            yield (
                {"table": "gemstones", "data": eval_set},
                frame,
                "chinchilla",
                {"columns": GEM_COLUMNS},
            )
    for name in ("lang", "vision"):
        if f"rnsl_{name}" in tables:
            for (_, task, model), curve in rnsl_curves(name).items():
                label = {"table": f"rnsl_{name}", "data": f"{task} | {model}"}
                yield label, curve, "power_d_e", dict(RNSL_OPTIONS)


def run_one(runs: Any, law: str, options: dict[str, Any]) -> dict[str, Any]:
    """Fit at default settings and return its diagnostics (or the error)."""
    start = time.perf_counter()
    try:
        table = bs.load_runs(runs, **options)
        with quiet():
            fitted = bs.fit(table, law, seed=0)
    except Exception as exc:  # a benchmark records failures and goes on
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    d = fitted.diagnostics
    return {
        "status": "ok",
        "n_runs": int(table.sizes["run"]),
        "divergences": int(d.divergences),
        "max_r_hat": float(d.max_r_hat),
        "min_ess_bulk": float(d.min_ess_bulk),
        "problems": d.problems,
        "adaptation": fitted.tree["sample_stats"].attrs.get("adaptation"),
        "wall_s": round(time.perf_counter() - start, 2),
    }


def totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per table: fits, clean fraction, fits with R-hat above :data:`RHAT_FAILED`."""
    frame = pd.DataFrame([r for r in rows if r["status"] == "ok"])
    out = []
    for table, group in frame.groupby("table", sort=False):
        clean = (group["divergences"] == 0) & (group["max_r_hat"] <= RHAT_MAX)
        out.append(
            {
                "table": table,
                "fits": len(group),
                "errors": sum(r["status"] != "ok" and r["table"] == table for r in rows),
                "clean": float(clean.mean()),
                "diverging": int((group["divergences"] > 0).sum()),
                "r_hat_over_1.01": int((group["max_r_hat"] > RHAT_MAX).sum()),
                "r_hat_over_1.05": int((group["max_r_hat"] > RHAT_FAILED).sum()),
                "worst_r_hat": float(group["max_r_hat"].max()),
                "median_wall_s": float(np.median(group["wall_s"])),
            }
        )
    return out


def write(rows: list[dict[str, Any]]) -> None:
    summary = totals(rows)
    doc = {"machine": describe_machine(), "totals": summary, "fits": rows}
    atomic_write_text(RESULTS / "real_sampling.json", json.dumps(doc, indent=1) + "\n")
    lines = [
        "# Default fits on the real tables: sampler health",
        "",
        "`benchmarks/real_sampling.py` (4 x 1000 draws, seed 0). Target: >= 98 % clean "
        f"(no divergence, R-hat <= {RHAT_MAX}), none above {RHAT_FAILED}.",
        "",
        "| table | fits | errors | clean | diverging | R-hat > 1.01 | R-hat > 1.05 | worst "
        "R-hat | median s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in summary:
        lines.append(
            f"| {t['table']} | {t['fits']} | {t['errors']} | {t['clean']:.0%} | "
            f"{t['diverging']} | {t['r_hat_over_1.01']} | {t['r_hat_over_1.05']} | "
            f"{t['worst_r_hat']:.3f} | {t['median_wall_s']:.1f} |"
        )
    unclean = [r for r in rows if r["status"] != "ok" or r["problems"]]
    if unclean:
        lines += ["", "Unclean fits:", ""]
        for r in unclean:
            what = r.get("error") or "; ".join(r["problems"])
            lines.append(f"- {r['table']} `{r['data']}` ({r['law']}): {what}")
    atomic_write_text(RESULTS / "real_sampling.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", action="append", choices=TABLES, help="default: all")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for label, runs, law, options in jobs(args.table or list(TABLES)):
        row = {**label, "law": law, **run_one(runs, law, options)}
        rows.append(row)
        print(
            f"{row['table']:<12}{row['data'][:40]:<42}{row.get('divergences', '-'):>4} "
            f"{row.get('max_r_hat', float('nan')):7.3f} {row.get('wall_s', 0):6.1f}s"
            + (f"  {row['error']}" if row["status"] != "ok" else ""),
            flush=True,
        )
        write(rows)


if __name__ == "__main__":
    sys.exit(main())
