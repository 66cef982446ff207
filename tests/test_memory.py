"""A large runs table costs memory in proportion to its rows, never rows x draws.

The models store no per-run quantity as a deterministic (see ``bayescale.model.build``): a
posterior predictive mean per run would be chains x draws x runs numbers (2 x 300 x 25,000 x
8 bytes = 120 MB here) and is recomputed from the latents on demand instead.
"""

from __future__ import annotations

import numpy as np
from conftest import simulate_law

import bayescale as bs

N_ROWS = 25_000


def test_large_fit_keeps_no_per_run_draws():
    runs = simulate_law("chinchilla", n_runs=N_ROWS, noise_sd=0.01, seed=12)
    fit = bs.fit(runs, "chinchilla", draws=300, tune=300, chains=2, seed=3)
    tree = fit.tree
    for group in ("posterior", "sample_stats"):
        ds = tree[group].to_dataset()
        per_run = [v for v in ds.data_vars if "run" in ds[v].dims]
        assert per_run == [], f"{group} stores per-run draws: {per_run}"
    n_draws = fit.posterior.sizes["chain"] * fit.posterior.sizes["draw"]
    assert fit.posterior.nbytes < 100 * n_draws * 8  # a few dozen scalars per draw
    # Everything held grows with the rows at most like a handful of columns per row.
    total = sum(tree[g].to_dataset().nbytes for g in tree.children)
    assert total < 40 * 8 * N_ROWS + fit.posterior.nbytes + tree["sample_stats"].to_dataset().nbytes
    # And the fit is right: the law is pinned down by this many runs.
    assert abs(float(fit.posterior["alpha"].mean()) - 0.34) < 0.01
    assert np.isfinite(fit.diagnostics.max_r_hat)
