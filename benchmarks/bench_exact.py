"""Exact conjugate path vs NUTS (nutpie, warm) vs plain PyMC NUTS on the same power_n ladder.

Run: ``.venv/bin/python benchmarks/bench_exact.py``. Prints wall times, min bulk ESS, ESS per
second and ratios. Timings live here, never in tests (the agreement test is in
tests/test_conjugate.py).
"""

import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs
from bayescale.laws import evaluate


def ladder(n=245, seed=0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e6), np.log(1e10), n))
    loss = evaluate("power_n", {"alpha_N": 0.076, "N_c": 8.8e13}, {"N": N})
    return pd.DataFrame({"N": N, "loss": loss * np.exp(rng.normal(0, 0.01, n))})


def timed(runs, sampler):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bs.fit(runs, "power_n", sampler=sampler, seed=1)
    seconds = time.perf_counter() - start
    return seconds, fit.diagnostics.min_ess_bulk


def main():
    runs = ladder()
    timed(runs, "nutpie")  # compile once: the comparison is of warm fits
    rows = {name: timed(runs, name) for name in ("exact", "nutpie", "pymc")}
    base = rows["pymc"]
    print(f"{'sampler':<8}{'wall s':>10}{'min ESS':>10}{'ESS/s':>12}{'speed-up vs pymc':>18}")
    for name, (sec, ess) in rows.items():
        print(f"{name:<8}{sec:>10.3f}{ess:>10.0f}{ess / sec:>12.0f}{base[0] / sec:>18.1f}")


if __name__ == "__main__":
    main()
