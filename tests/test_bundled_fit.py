"""The README's main job: kaplan_nd on the bundled Kaplan ladder recovers alpha_N/alpha_D."""

import bayescale as bs
from bayescale.runs.table import dataset_info


def test_kaplan_ladder_recovers_exponent_ratio():
    truth = dataset_info("kaplan_ladder")["params"]
    ratio = truth["alpha_N"] / truth["alpha_D"]  # 0.738, Kaplan's data-requirement exponent
    fit = bs.fit("kaplan_ladder", "kaplan_nd", seed=0)
    row = fit.summary().loc["alpha_N_over_alpha_D"]
    assert row["hdi_low"] <= ratio <= row["hdi_high"]
    assert row["hdi_high"] - row["hdi_low"] < 0.15  # informative, not just the prior
    assert fit.diagnostics.divergences == 0
    assert fit.diagnostics.max_r_hat <= 1.01
