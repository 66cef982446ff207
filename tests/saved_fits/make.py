"""Write the fit files of this release that every later release must load and predict from.

Run once per release whose file format should stay readable:
``python tests/saved_fits/make.py VERSION``. It writes ``VERSION/<case>.nc`` and
``VERSION/expected.json``: each case's posterior-mean prediction at fixed inputs, which
``tests/test_saved_fits.py`` recomputes from the loaded file.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale as bs

HERE = Path(__file__).resolve().parent
SMALL = {"draws": 100, "tune": 100, "chains": 2, "seed": 3}
#: The group asked of grouped fits.
GROUP = "dense"

#: Case name -> (fit arguments, prediction inputs).
CASES = {
    "power_n_exact": (
        {"runs": "kaplan_ladder", "law": "power_n", "sampler": "exact", "draws": 200, "chains": 2},
        {"N": [1e9, 1e11]},
    ),
    "kaplan_nd": (
        {"runs": "kaplan_ladder", "law": "kaplan_nd", **SMALL},
        {"N": [1e9], "D": [1e11]},
    ),
    "power_n_e_grouped": (
        {"runs": "grouped_ladder", "law": "power_n_e", "groups": ["family"], **SMALL},
        {"N": [1e9]},
    ),
}


def curves_table() -> pd.DataFrame:
    """Twelve points on each of four learning curves (kaplan_ns), with a run column."""
    p = {"alpha_N": 0.077, "alpha_S": 0.76, "N_c": 6.5e13, "S_c": 2.1e3}
    rng = np.random.default_rng(0)
    rows = []
    for k, n in enumerate(np.geomspace(1e7, 1e9, 4)):
        for s in np.geomspace(1e3, 1e5, 12):
            clean = bs.evaluate("kaplan_ns", p, {"N": np.array([n]), "step": np.array([s])})[0]
            rows.append(
                {"run": f"r{k}", "N": n, "step": s, "loss": clean * np.exp(rng.normal(0, 0.005))}
            )
    return pd.DataFrame(rows)


def main(version: str) -> int:
    out = HERE / version
    out.mkdir(exist_ok=True)
    cases = dict(CASES)
    cases["kaplan_ns_curves"] = (
        {"runs": curves_table(), "law": "kaplan_ns", "run_id": "run", **SMALL},
        {"N": [1e8], "step": [2e5]},
    )
    expected = {}
    for name, (kwargs, at) in cases.items():
        kwargs = dict(kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny fits: sampler warnings are expected
            fitted = bs.fit(kwargs.pop("runs"), kwargs.pop("law"), **kwargs)
        fitted.save(out / f"{name}.nc")
        group = GROUP if kwargs.get("groups") else None
        draws = fitted.expected_log_loss({k: np.asarray(v) for k, v in at.items()}, group=group)
        mean = draws.mean(("chain", "draw"))
        expected[name] = {"inputs": at, "group": group, "mean_log_loss": np.asarray(mean).tolist()}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} fits to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
