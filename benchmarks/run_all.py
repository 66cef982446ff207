"""Run every benchmark and write ``benchmarks/results/results.{json,md}``.

Run: ``.venv/bin/python benchmarks/run_all.py`` (``--quick`` for chinchilla only, fewer naive
baselines; ``--only CASE`` for one case). Numbers are wall times on this machine; compare
within one run (ratios), since other processes share the cores.

Variants compared on the same data and seeds:

* ``bayescale``: ``bayescale.fit`` with its defaults. ``compile_s`` is the first fit ever
  (empty cache) minus a warm one; ``wall_s`` is a fit whose compiled model comes from the disk
  cache (what every later process pays), sampling included.
* ``naive pm.sample``: the law written naively (see ``common.naive_model``) and sampled with
  ``pm.sample()`` defaults, as a user would (PyMC 6 picks nutpie for it when installed, and
  compiles it).
* ``naive pymc-nuts`` / ``naive numpyro`` / ``naive nutpie``: the naive model with PyMC's own
  NUTS, with numpyro (if installed), and with nutpie called directly (compile separated).

ESS is the minimum bulk ESS over the paper's parameters and the noise scale; ``ess_per_s`` is
ESS over total wall time (compilation included where the variant pays it on every call).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import (
    CHAINS,
    DRAWS,
    RESULTS,
    ROOT,
    TUNE,
    describe_machine,
    divergences,
    ladder,
    min_ess,
    naive_model,
    paper_names,
    quiet,
    record,
    timed,
    timed_cpu,
)

import bayescale as bs
from bayescale.laws.base import evaluate, list_laws

SEED = 1
#: Laws that need inputs other than N, D, C, or a learning-curve layout, get their own case.
CURVE_LAWS = ("kaplan_ns", "kaplan_ns_bcrit", "critical_batch")


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------
def run_bayescale(case: str, runs: pd.DataFrame, law: str, **kw: Any) -> dict[str, Any]:
    """Fit three times: first ever (compile), warm in memory, and from the disk cache."""
    from bayescale.fitting import cache

    cache.clear_cache()
    with quiet():
        first, _ = timed(lambda: bs.fit(runs, law, seed=SEED, **kw))
        warm, _ = timed(lambda: bs.fit(runs, law, seed=SEED, **kw))
        cache.clear_cache(disk=False)
        wall, cpu, fit = timed_cpu(lambda: bs.fit(runs, law, seed=SEED, **kw))
    post = fit.posterior
    names = [n for n in paper_names(law) if n in post]
    bulk, tail = min_ess(post, names)
    return record(
        case,
        "bayescale",
        law=law,
        n_rows=len(runs),
        compile_s=max(first - warm, 0.0),
        first_fit_s=first,
        warm_fit_s=warm,
        wall_s=wall,
        cpu_s=cpu,
        min_ess_bulk=bulk,
        min_ess_tail=tail,
        divergences=fit.diagnostics.divergences,
        max_r_hat=fit.diagnostics.max_r_hat,
    )


def run_naive(
    case: str, runs: pd.DataFrame, law: str, sampler: str | None, groups: str | None = None
) -> dict[str, Any]:
    """The naive model with ``pm.sample`` (default sampler, or the one named)."""
    import pymc as pm

    model = naive_model(law, runs, groups)
    kwargs: dict[str, Any] = {} if sampler is None else {"nuts_sampler": sampler}
    with quiet():
        wall, tree = timed(
            lambda: pm.sample(
                model=model,
                random_seed=SEED,
                progressbar=False,
                compute_convergence_checks=False,
                **kwargs,
            )
        )
    post = tree["posterior"].to_dataset()
    bulk, tail = min_ess(post, paper_names(law))
    return record(
        case,
        f"naive pm.sample{'' if sampler is None else f'({sampler})'}",
        law=law,
        n_rows=len(runs),
        wall_s=wall,
        min_ess_bulk=bulk,
        min_ess_tail=tail,
        divergences=divergences(tree),
    )


def run_naive_nutpie(case: str, runs: pd.DataFrame, law: str) -> dict[str, Any]:
    """The naive model compiled and sampled by nutpie directly (compile time separated)."""
    import nutpie

    model = naive_model(law, runs)
    with quiet():
        compile_s, compiled = timed(lambda: nutpie.compile_pymc_model(model))
        sample_s, tree = timed(
            lambda: nutpie.sample(
                compiled, draws=DRAWS, tune=TUNE, chains=CHAINS, seed=SEED, progress_bar=False
            )
        )
    bulk, tail = min_ess(tree["posterior"].to_dataset(), paper_names(law))
    return record(
        case,
        "naive nutpie",
        law=law,
        n_rows=len(runs),
        compile_s=compile_s,
        sample_s=sample_s,
        wall_s=compile_s + sample_s,
        min_ess_bulk=bulk,
        min_ess_tail=tail,
        divergences=divergences(tree),
    )


def numpyro_available() -> bool:
    try:
        import numpyro  # noqa: F401
    except ImportError:
        return False
    return True


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ESS/s of each row relative to ``naive pm.sample`` of the same case and law."""
    base = {
        (r["case"], r.get("law")): r["ess_per_s"]
        for r in rows
        if r["variant"] == "naive pm.sample" and r.get("ess_per_s")
    }
    for r in rows:
        b = base.get((r["case"], r.get("law")))
        if b and r.get("ess_per_s"):
            r["ess_per_s_vs_naive"] = r["ess_per_s"] / b


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------
def case_pooled(quick: bool) -> list[dict[str, Any]]:
    """Every pooled law on a 245-run ladder (learning-curve laws in their own case)."""
    laws = ["chinchilla"]  # the headline case first
    if not quick:
        laws += [n for n in list_laws() if n not in (*CURVE_LAWS, "chinchilla")]
    rows = []
    for law in laws:
        runs = ladder(law, 245)
        new = [run_bayescale("pooled 245 runs", runs, law)]
        new.append(run_naive("pooled 245 runs", runs, law, None))
        if law == "chinchilla":
            new.append(run_naive_nutpie("pooled 245 runs", runs, law))
            new.append(run_naive("pooled 245 runs", runs, law, "pymc"))
            if numpyro_available():
                new.append(run_naive("pooled 245 runs", runs, law, "numpyro"))
        print_rows(new)
        rows += new
    return rows


def grouped_ladder(n_groups: int, runs_per_group: int = 12, seed: int = 0) -> pd.DataFrame:
    """Chinchilla runs of model families whose exponents and amplitudes vary.

    Per family: alpha, beta ~ published x exp(N(0, 0.1)); A, B ~ published x exp(N(0, 0.3));
    E shared (a property of the data). Each family has its own log-uniform N and D design.
    """
    from common import design, true_params

    rng = np.random.default_rng(seed)
    truth = true_params("chinchilla")
    frames = []
    for g in range(n_groups):
        p = dict(truth)
        for k, s in (("alpha", 0.1), ("beta", 0.1), ("A", 0.3), ("B", 0.3)):
            p[k] = truth[k] * float(np.exp(s * rng.standard_normal()))
        x = design("chinchilla", runs_per_group, seed + 100 + g)
        loss = evaluate("chinchilla", p, x) * np.exp(rng.normal(0, 0.01, runs_per_group))
        frames.append(pd.DataFrame({**x, "loss": loss, "family": f"f{g:03d}"}))
    return pd.concat(frames, ignore_index=True)


def case_groups(quick: bool) -> list[dict[str, Any]]:
    """Chinchilla with 20 and 100 model families (partial pooling)."""
    rows = []
    for n_groups in (20,) if quick else (20, 100):
        runs = grouped_ladder(n_groups)
        case = f"chinchilla {n_groups} groups"
        rows.append(run_bayescale(case, runs, "chinchilla", groups="family"))
        rows.append(run_naive(case, runs, "chinchilla", None, groups="family"))
        print_rows(rows[-2:])
    return rows


def curve_runs(n_runs: int = 50, n_steps: int = 200, seed: int = 0) -> pd.DataFrame:
    """Learning curves: ``n_runs`` model sizes, each logged at ``n_steps`` log-spaced steps."""
    from common import NOISE_SD, RANGES, true_params

    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(*np.log(RANGES["N"]), n_runs))
    steps = np.geomspace(*RANGES["step"], n_steps)
    n, s = np.repeat(sizes, n_steps), np.tile(steps, n_runs)
    loss = evaluate("kaplan_ns", true_params("kaplan_ns"), {"N": n, "step": s})
    noise = np.exp(rng.normal(0, NOISE_SD, n.size))
    return pd.DataFrame({"N": n, "step": s, "loss": loss * noise})


def case_curves(quick: bool) -> list[dict[str, Any]]:
    """Learning curves, 50 runs x 200 steps, with kaplan_ns (when the law is registered)."""
    if "kaplan_ns" not in list_laws():
        return [record("learning curves 50x200", "skipped", note="law kaplan_ns not registered")]
    runs = curve_runs()
    rows = [
        run_bayescale("learning curves 50x200", runs, "kaplan_ns"),
        run_naive("learning curves 50x200", runs, "kaplan_ns", None),
    ]
    print_rows(rows)
    return rows


def case_growth(quick: bool) -> list[dict[str, Any]]:
    """How the default fit's cost grows with the number of rows (chinchilla).

    ``growth`` is the ratio of CPU time to the previous size's (rows grow 10x each step).
    """
    rows = []
    for n in (250, 2_500) if quick else (250, 2_500, 25_000):
        rows.append(run_bayescale("cost growth", ladder("chinchilla", n), "chinchilla"))
        if len(rows) > 1:
            rows[-1]["growth"] = rows[-1]["cpu_s"] / rows[-2]["cpu_s"]
        print_rows(rows[-1:])
    return rows


def case_exact(quick: bool, repeats: int = 3) -> list[dict[str, Any]]:
    """Exact conjugate path vs NUTS (warm nutpie, PyMC's own) for power_n on 245 runs.

    Each variant's time is the best of ``repeats`` fits: the exact path takes milliseconds,
    which one busy moment of a shared machine would otherwise swamp.
    """
    runs = ladder("power_n", 245)
    bs.fit(runs, "power_n", seed=SEED)  # compile once: the comparison is of warm fits
    rows = []
    for sampler in ("exact", "nutpie", "pymc"):
        with quiet():
            fits = [
                timed(lambda s=sampler: bs.fit(runs, "power_n", sampler=s, seed=SEED))
                for _ in range(repeats)
            ]
        wall, fit = min(fits, key=lambda pair: pair[0])
        bulk, tail = min_ess(fit.posterior, paper_names("power_n"))
        rows.append(
            record(
                "exact vs NUTS power_n",
                f"bayescale sampler={sampler}",
                law="power_n",
                n_rows=len(runs),
                wall_s=wall,
                min_ess_bulk=bulk,
                min_ess_tail=tail,
                divergences=fit.diagnostics.divergences,
            )
        )
    nuts = {r["variant"]: r["wall_s"] for r in rows}
    for r in rows:
        r["speedup_vs_pymc_nuts"] = nuts["bayescale sampler=pymc"] / r["wall_s"]
        r["speedup_vs_nutpie"] = nuts["bayescale sampler=nutpie"] / r["wall_s"]
    print_rows(rows)
    return rows


def _ssl_cli() -> str | None:
    found = Path(sys.executable).parent / "scaling-laws"
    return str(found) if found.exists() else shutil.which("scaling-laws")


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of a command, in seconds.

    CPU time is what a shared, busy machine distorts least: wall time then mostly measures
    waiting for a core.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def case_cold_start(quick: bool, repeats: int = 3) -> list[dict[str, Any]]:
    """Fresh processes on a 24-run Chinchilla ladder: bayescale fit + summary vs the
    simple-scaling-laws CLI fit with 1000 bootstrap draws (which prints its own summary)."""
    runs = ladder("chinchilla", 24)
    work = Path(tempfile.mkdtemp(prefix="bayescale-bench-"))
    table = work / "runs.csv"
    runs.to_csv(table, index=False)
    ssl_table = work / "runs_ssl.csv"
    pd.DataFrame(
        {
            "training_run_id": [f"r{i}" for i in range(len(runs))],
            "model_size__n": runs["N"],
            "dataset_size__d": runs["D"],
            "test_loss__cross_entropy": runs["loss"],
        }
    ).to_csv(ssl_table, index=False)
    # The project's own environment when it exists (this interpreter may be a benchmark venv
    # with numpyro, whose imports a user of bayescale does not pay).
    exe = shutil.which("bayescale", path=str(ROOT / ".venv" / "bin")) or shutil.which("bayescale")
    if exe is None:
        raise SystemExit("the bayescale command is not installed")
    env = {**os.environ, "BAYESCALE_CACHE_DIR": str(work / "cache")}
    fit_cmd = [exe, "fit", str(table), "--law", "chinchilla", "-o", str(work / "fit.nc")]
    summary_cmd = [exe, "summary", str(work / "fit.nc")]

    def bayescale_times() -> dict[str, float]:
        (fit_wall, fit_cpu), (summary_wall, summary_cpu) = (
            _run(fit_cmd, env),
            _run(summary_cmd, env),
        )
        return {
            "fit_s": fit_wall,
            "summary_s": summary_wall,
            "wall_s": fit_wall + summary_wall,
            "cpu_s": fit_cpu + summary_cpu,
        }

    def median(runs: list[dict[str, float]]) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    case = "cold start 24 runs"
    rows = [record(case, "bayescale fit+summary, first ever (empty cache)", **bayescale_times())]
    cached = median([bayescale_times() for _ in range(repeats)])
    rows.append(
        record(
            case, "bayescale fit+summary, fresh processes (disk cache)", **cached, repeats=repeats
        )
    )
    fit_only = median(
        [dict(zip(("wall_s", "cpu_s"), _run(fit_cmd, env), strict=True)) for _ in range(repeats)]
    )
    rows.append(record(case, "bayescale fit alone (disk cache)", **fit_only, repeats=repeats))
    ssl = _ssl_cli()
    if ssl is None:
        rows.append(record(case, "simple-scaling-laws", note="not installed"))
    else:
        cmd = [ssl, "fit", str(ssl_table), "--law", "separable-power", "--draws", "1000"]
        times = [_run([*cmd, "-o", str(work / f"ssl{i}.slaw")], env) for i in range(repeats)]
        rows.append(
            record(
                case,
                "simple-scaling-laws fit --draws 1000",
                wall_s=statistics.median(w for w, _ in times),
                cpu_s=statistics.median(c for _, c in times),
                repeats=repeats,
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    print_rows(rows)
    return rows


CASES = {
    "cold_start": case_cold_start,
    "exact": case_exact,
    "pooled": case_pooled,
    "groups": case_groups,
    "curves": case_curves,
    "growth": case_growth,
}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
COLUMNS = (
    ("variant", "variant", "{}"),
    ("law", "law", "{}"),
    ("n_rows", "rows", "{:,}"),
    ("compile_s", "compile s", "{:.2f}"),
    ("wall_s", "wall s", "{:.3g}"),
    ("cpu_s", "CPU s", "{:.2f}"),
    ("growth", "CPU growth", "{:.1f}x"),
    ("min_ess_bulk", "min ESS", "{:.0f}"),
    ("ess_per_s", "ESS/s", "{:.0f}"),
    ("ess_per_s_vs_naive", "vs naive", "{:.1f}x"),
    ("divergences", "div.", "{}"),
    ("speedup_vs_pymc_nuts", "speed-up vs PyMC NUTS", "{:.0f}x"),
    ("fit_s", "fit s", "{:.2f}"),
    ("summary_s", "summary s", "{:.2f}"),
    ("note", "note", "{}"),
)


def _cell(row: dict[str, Any], key: str, spec: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    return spec.format(value)


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """Results as one markdown table per case (columns without values are dropped)."""
    lines = [
        "# bayescale benchmarks",
        "",
        f"Machine: {machine['cpus']} cores (shared with other jobs: each case gives the load "
        f"average it was measured under); Python {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v),
        "",
        f"Settings: {CHAINS} chains x {DRAWS} draws (bayescale: its defaults); "
        "ESS = min bulk ESS over the paper's parameters and sigma; ESS/s on total wall time.",
        "",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        sub = [r for r in rows if r["case"] == case]
        cols = [(k, h, s) for k, h, s in COLUMNS if any(r.get(k) is not None for r in sub)]
        lines += [f"## {case}", ""]
        loads = [r["load"] for r in sub if r.get("load") is not None]
        if loads:
            span = f"{min(loads):.1f}" + (f"-{max(loads):.1f}" if max(loads) > min(loads) else "")
            lines += [f"Load average (1 min, 2 cores) while measured: {span}.", ""]
        lines += ["| " + " | ".join(h for _, h, _ in cols) + " |"]
        lines.append("|" + "---|" * len(cols))
        lines += ["| " + " | ".join(_cell(r, k, s) for k, _, s in cols) + " |" for r in sub]
        lines.append("")
    return "\n".join(lines)


def print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
        print(json.dumps(fields), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="chinchilla only, fewer sizes")
    parser.add_argument("--only", choices=list(CASES), action="append", help="run these cases")
    parser.add_argument("--output", default=str(RESULTS), help="results directory")
    args = parser.parse_args(argv)
    machine = dict(describe_machine())
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    # Benchmarks own their compiled-model cache, so "first ever" means it.
    os.environ["BAYESCALE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bayescale-bench-cache-")
    ran = args.only or list(CASES)
    rows: list[dict[str, Any]] = []
    previous = out / "results.json"
    if args.only and previous.is_file():  # keep the other cases' latest results
        kept = json.loads(previous.read_text())["rows"]
        rows += [r for r in kept if r.get("group") not in ran]
    for name in ran:
        start = time.perf_counter()
        rows += [{"group": name, **r} for r in CASES[name](args.quick)]
        print(f"# case {name}: {time.perf_counter() - start:.0f} s", flush=True)
        add_ratios(rows)
        machine["load_average_end"] = list(os.getloadavg())
        # Written after every case, so an interrupted run keeps what it measured.
        (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
        (out / "results.md").write_text(markdown(rows, machine))
    print(markdown(rows, machine))


if __name__ == "__main__":
    main()
