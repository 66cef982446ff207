"""NumPy diagnostics and summary table checked against ArviZ on the same draws.

:mod:`bayescale.core.stats` re-implements ArviZ's rank-normalised R-hat, bulk/tail ESS,
MCSE and HDI so that the CLI does not import ArviZ. Here both are run on the same arrays:
AR(1) chains of several autocorrelations, chain counts and odd lengths, plus the awkward
cases (ties, a constant element, a stuck chain, heavy tails, infinities, NaN, too few draws),
and on the posteriors of real fits. ArviZ may be imported here; the module itself must not.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import bayescale as bs
from bayescale.core import stats as diagnostics
from bayescale.core.errors import SamplingWarning

#: The implementations differ only in floating-point summation order and in the inverse
#: normal CDF (AS241 here, cephes ndtri in SciPy), both ~1e-15 relative.
RTOL = 1e-9
HDI_PROB = 0.94


def _ar1(rng, chains: int, draws: int, phi: float, size: int = 3) -> np.ndarray:
    """Stationary AR(1) draws, dims (chain, draw, element)."""
    noise = rng.normal(size=(chains, draws, size))
    out = np.empty_like(noise)
    out[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        out[:, t] = phi * out[:, t - 1] + noise[:, t]
    return out


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240609)
    cases = {
        f"ar{phi}-c{chains}-n{draws}": _ar1(rng, chains, draws, phi)
        for phi in (0.0, 0.5, 0.95)
        for chains in (1, 2, 4)
        for draws in (7, 101, 400)
    }
    stuck = _ar1(rng, 4, 200, 0.3)
    stuck[2] += 5.0
    cases["stuck-chain"] = stuck
    cases["ties"] = np.round(_ar1(rng, 4, 201, 0.3))
    constant = _ar1(rng, 2, 200, 0.3)
    constant[..., 1] = 3.0
    cases["constant"] = constant
    cases["cauchy"] = rng.standard_cauchy(size=(4, 300, 3))
    infinite = _ar1(rng, 2, 200, 0.3)
    infinite[0, 5, 0] = np.inf
    infinite[1, 7, 1] = -np.inf
    infinite[:, :100, 2] = np.inf
    cases["inf"] = infinite
    with_nan = _ar1(rng, 2, 200, 0.3)
    with_nan[0, 5, 0] = np.nan
    cases["nan"] = with_nan
    cases["three-draws"] = _ar1(rng, 2, 3, 0.3)
    cases["tiny-scale"] = _ar1(rng, 2, 100, 0.3) * 1e-17
    cases["matrix-element"] = _ar1(rng, 2, 50, 0.5, size=6).reshape(2, 50, 2, 3)
    return cases


CASES = _cases()


def _arviz(draws: np.ndarray) -> dict[str, np.ndarray]:
    from arviz_stats.base import array_stats

    moved = np.moveaxis(draws, (0, 1), (-2, -1))
    with np.errstate(all="ignore"):
        return {
            "rhat": array_stats.rhat(moved),
            "ess_bulk": array_stats.ess(moved, method="bulk"),
            "ess_tail": array_stats.ess(moved, method="tail", prob=diagnostics.TAIL_PROB),
            "ess_mean": array_stats.ess(moved, method="mean"),
            "mcse_mean": array_stats.mcse(moved, method="mean"),
            "mcse_sd": array_stats.mcse(moved, method="sd"),
            "hdi": array_stats.hdi(moved, HDI_PROB, axis=(-2, -1)),
        }


def _ours(draws: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "rhat": diagnostics.rhat(draws),
        "ess_bulk": diagnostics.ess_bulk(draws),
        "ess_tail": diagnostics.ess_tail(draws),
        "ess_mean": diagnostics.ess_mean(draws),
        "mcse_mean": diagnostics.mcse_mean(draws),
        "mcse_sd": diagnostics.mcse_sd(draws),
        "hdi": diagnostics.hdi(draws, HDI_PROB),
    }


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_diagnostics_match_arviz(name):
    draws = CASES[name]
    expected, got = _arviz(draws), _ours(draws)
    for stat, want in expected.items():
        want = np.asarray(want, dtype=float)
        assert got[stat].shape == want.shape, stat
        np.testing.assert_allclose(got[stat], want, rtol=RTOL, atol=0, err_msg=stat)


def test_cases_cover_the_conventions():
    # The comparison above is only meaningful if the awkward cases really are awkward.
    ours = _ours
    stuck = ours(CASES["stuck-chain"])["rhat"]
    assert np.all(stuck > 1.5)
    mixed = ours(CASES["ar0.0-c4-n400"])["rhat"]
    assert np.all(np.abs(mixed - 1) < 0.02)
    constant = ours(CASES["constant"])
    assert np.isnan(constant["rhat"][1])
    assert constant["ess_bulk"][1] == 400  # every (split) draw of a constant counts
    assert np.all(np.isnan(ours(CASES["ar0.5-c1-n101"])["rhat"]))  # one chain
    assert np.all(np.isnan(ours(CASES["three-draws"])["ess_bulk"]))
    assert np.isnan(ours(CASES["nan"])["ess_bulk"][0])
    slow, fast = ours(CASES["ar0.95-c4-n400"]), ours(CASES["ar0.0-c4-n400"])
    assert np.all(slow["ess_bulk"] < 0.2 * fast["ess_bulk"])


def test_norm_ppf_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    p = np.concatenate(
        [
            rng.uniform(size=20_000),
            10 ** rng.uniform(-300, -1, 2_000),
            1 - 10 ** rng.uniform(-16, -1, 2_000),
        ]
    )
    np.testing.assert_allclose(diagnostics.norm_ppf(p), stats.norm.ppf(p), rtol=1e-13, atol=0)
    ends = diagnostics.norm_ppf([0.0, 0.5, 1.0, np.nan, -0.1, 1.1])
    np.testing.assert_array_equal(ends, [-np.inf, 0.0, np.inf, np.nan, np.nan, np.nan])


def test_rankdata_matches_scipy():
    from scipy import stats

    rng = np.random.default_rng(4)
    values = rng.integers(0, 6, size=(5, 40)).astype(float)
    values[1, 3] = values[2, 0] = np.nan
    values[4] = rng.normal(size=40)  # no ties: the inverse-permutation path
    expected = [stats.rankdata(row, method="average", nan_policy="omit") for row in values]
    np.testing.assert_array_equal(diagnostics.rankdata(values), expected)


def test_hdi_rejects_bad_prob():
    with pytest.raises(ValueError, match="prob"):
        diagnostics.hdi(np.zeros((2, 10)), 1.5)


# --------------------------------------------------------------------------------------------
# Summary table against az.summary on real fits
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exact_fit() -> bs.Fit:
    return bs.fit("grouped_ladder", "power_n", sampler="exact", draws=200, chains=2, seed=1)


@pytest.fixture(scope="module")
def nutpie_fit() -> bs.Fit:
    # 200 draws of a hierarchical fit need not converge: the table, not the health, is tested.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return bs.fit(
            "grouped_ladder",
            "power_n_e",
            groups="family",
            draws=200,
            tune=200,
            chains=2,
            seed=2,
        )


@pytest.mark.parametrize("which", ["exact_fit", "nutpie_fit"])
@pytest.mark.parametrize("prob", [0.94, 0.5])
def test_summary_table_matches_az_summary(which, prob, request):
    import arviz as az

    fit = request.getfixturevalue(which)
    names = fit.reported
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected = az.summary(
            fit.tree, var_names=names, ci_kind="hdi", ci_prob=prob, round_to="none"
        )
    got = diagnostics.summary_table(fit.tree["posterior"], var_names=names, prob=prob)
    assert list(got.index) == list(expected.index)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(dtype=float), rtol=1e-8, atol=0)
    if which == "nutpie_fit":
        assert any("[" in label for label in got.index)  # vector elements are labelled


def test_summary_table_all_variables(exact_fit):
    import arviz as az

    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        expected = az.summary(exact_fit.tree, ci_kind="hdi", round_to="none")
    got = diagnostics.summary_table(exact_fit.tree, prob=0.89)
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(dtype=float), rtol=1e-8)


HEAVY = ("arviz", "arviz_stats", "scipy.stats", "scipy.special")


def _new_heavy_modules(code: str) -> list[str]:
    """Heavy modules a fresh interpreter holds after ``code`` (which sets ``before``)."""
    script = code + (
        f"\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules and m not in before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return [m for m in out.strip().split(",") if m]


def test_diagnostics_import_no_arviz_or_scipy():
    code = (
        "import sys\n"
        "before = set()\n"
        "import numpy as np\n"
        "import bayescale.core.stats as d\n"
        "x = np.random.default_rng(0).normal(size=(2, 50, 3))\n"
        "d.rhat(x); d.ess_bulk(x); d.ess_tail(x); d.ess_mean(x)\n"
        "d.mcse_mean(x); d.mcse_sd(x); d.hdi(x, 0.9)"
    )
    assert _new_heavy_modules(code) == []


def test_summary_table_imports_no_arviz_or_scipy():
    # Building any xarray object imports dask (when installed), which imports scipy.special:
    # that cost belongs to xarray, so only what summary_table adds is checked.
    code = (
        "import sys\n"
        "import numpy as np, xarray as xr\n"
        "x = np.random.default_rng(0).normal(size=(2, 50, 3))\n"
        "ds = xr.Dataset({'a': (('chain', 'draw', 'k'), x)}, coords={'k': ['p', 'q', 'r']})\n"
        "before = set(sys.modules)\n"
        "import bayescale.core.stats as d\n"
        "table = d.summary_table(ds)\n"
        "assert list(table.index) == ['a[p]', 'a[q]', 'a[r]'], table.index"
    )
    assert _new_heavy_modules(code) == []
