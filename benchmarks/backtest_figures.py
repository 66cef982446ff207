"""Figures of the real-data backtests, drawn from ``benchmarks/results/backtest_real_*.json``.

Run after ``benchmarks/backtest_real.py``: ``.venv/bin/python benchmarks/backtest_figures.py``.
Writes ``docs/figures/backtest_gemstones.png`` (held-out Gemstones runs with each method's
94 % interval) and ``docs/figures/backtest_coverage.png`` (coverage per table and method).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from common import RESULTS, ROOT

from bayescale.plots import PALETTE, save_figure

OUT = ROOT / "docs" / "figures"
METHODS = (
    "bayescale",
    "bayescale+distance",
    "bayescale+student_t",
    "least_squares",
    "simple_scaling_laws",
)
COLOURS = dict(zip(METHODS, PALETTE[1:], strict=False))


def _load(table: str) -> dict[str, Any] | None:
    path = RESULTS / f"backtest_real_{table}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def plot_gemstones_split(
    doc: dict[str, Any], *, eval_set: str = "val", law: str = "chinchilla", split: str = "largest_N"
) -> Any:
    """One panel per held-out model: observed losses and each method's interval against D."""
    import matplotlib.pyplot as plt

    rows = [
        r
        for r in doc["splits"]
        if (r.get("eval"), r["law"], r["split"], r["status"]) == (eval_set, law, split, "ok")
    ]
    sizes = sorted({run["N"] for run in rows[0]["runs"]})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, size in zip(axes, sizes, strict=True):
        for k, row in enumerate(rows):
            runs = [run for run in row["runs"] if run["N"] == size]
            d = np.array([run["D"] for run in runs])
            shift = 10 ** (0.012 * (k - (len(rows) - 1) / 2))  # side by side on a log axis
            lo, hi = np.array([run["lo"] for run in runs]), np.array([run["hi"] for run in runs])
            ax.vlines(d * shift, lo, hi, color=COLOURS[row["method"]], lw=2, label=row["method"])
            if k == 0:
                loss = [run["loss"] for run in runs]
                ax.plot(d, loss, "o", color=PALETTE[0], ms=3.5, label="observed", zorder=3)
        ax.set_xscale("log")
        ax.set_title(f"N = {size / 1e9:.3f} B (non-embedding)", fontsize=10)
        ax.set_xlabel("D (tokens)")
    axes[0].set_ylabel("validation loss (nats/token)")
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(
        f"Gemstones ({eval_set}), {law}: 3 largest models held out, 94 % intervals", fontsize=11
    )
    fig.tight_layout()
    return fig


def coverage_table() -> list[tuple[str, str, float, int]]:
    """(table label, method, coverage, held-out runs) pooled per table.

    RNSL language is pooled per domain (units differ); vision over all its curves, each
    method over the curves it ran.
    """
    out = []
    tables = (("gemstones", None), ("olmo", None), ("rnsl_lang", "eval"), ("rnsl_vision", None))
    for table, key in tables:
        doc = _load(table)
        if doc is None:
            continue
        for method in METHODS:
            rows = [r for r in doc["splits"] if r["method"] == method and r["status"] == "ok"]
            labels = sorted({r[key] for r in rows}) if key else [None]
            for label in labels:
                runs = [run for r in rows if key is None or r[key] == label for run in r["runs"]]
                if runs:
                    name = (
                        table.replace("_", " ")
                        if label is None
                        else f"{table.split('_')[0]} {label}"
                    )
                    inside = float(np.mean([run["inside"] for run in runs]))
                    out.append((name, method, inside, len(runs)))
    return out


def plot_coverage_bars(rows: list[tuple[str, str, float, int]]) -> Any:
    """Grouped bars: coverage of each method per table, with the nominal 0.94."""
    import matplotlib.pyplot as plt

    tables = list(dict.fromkeys(r[0] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    shown = [m for m in METHODS if any(r[1] == m for r in rows)]
    width = 0.8 / len(shown)
    for k, method in enumerate(shown):
        values = {r[0]: r[2] for r in rows if r[1] == method}
        x = [i + (k - (len(shown) - 1) / 2) * width for i, t in enumerate(tables) if t in values]
        heights = [values[t] for t in tables if t in values]
        ax.bar(x, heights, width, color=COLOURS[method], label=method)
    ax.axhline(0.94, color=PALETTE[0], ls="--", lw=1, label="nominal 0.94")
    ax.set_xticks(range(len(tables)), tables)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("coverage of held-out runs")
    ax.legend(fontsize=8, frameon=False, ncol=3, loc="lower left")
    fig.tight_layout()
    return fig


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    gem = _load("gemstones")
    if gem is not None:
        save_figure(plot_gemstones_split(gem), OUT / "backtest_gemstones.png")
    save_figure(plot_coverage_bars(coverage_table()), OUT / "backtest_coverage.png")
    print(f"wrote figures to {OUT}")


if __name__ == "__main__":
    main()
