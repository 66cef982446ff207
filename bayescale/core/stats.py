"""Convergence diagnostics and posterior summaries in plain NumPy.

The same numbers as ArviZ 1.x (``arviz_stats``): rank-normalised split R-hat, bulk and tail
effective sample sizes, Monte Carlo standard errors of the mean and sd, and the
highest-density interval, following Vehtari et al. (2021), "Rank-normalization, folding, and
localization: an improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2),
arXiv:1903.08008. Importing ``arviz`` pulls in ``scipy.stats`` and ``matplotlib.pyplot``
(about 1.4 s per process); this module needs only NumPy, so ``bayescale fit`` and
``bayescale summary`` start fast.

Every function takes ``draws`` shaped ``(chain, draw, *rest)`` and returns an array of shape
``rest``, computed for all elements at once. The conventions are ArviZ's: NaN when an element
holds a NaN, has fewer than 4 draws (or fewer than 2 chains for R-hat); the ESS of a constant
element is its number of (split) draws; R-hat of a constant element is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

__all__ = [
    "TAIL_PROB",
    "ess_bulk",
    "ess_mean",
    "ess_tail",
    "hdi",
    "mcse_mean",
    "mcse_sd",
    "norm_ppf",
    "rankdata",
    "rhat",
    "summary_table",
]

#: Probability whose two tails set the tail ESS: the 11 % and 89 % quantiles. ArviZ 1.x uses
#: ``rcParams["stats.ci_prob"]`` (0.89 by default) when ``ess(method="tail")`` gets no prob.
TAIL_PROB = 0.89
#: Fewer draws per chain than this give NaN diagnostics (as in ArviZ).
MIN_DRAWS = 4
#: Offset of Blom's (1958) rank back-transformation used by the rank normalisation.
_BLOM = 3 / 8

# Wichura (1988), Algorithm AS241 (PPND16), as in CPython's statistics.NormalDist.inv_cdf:
# relative accuracy about 1e-16. Coefficients are listed from the highest power down.
_AS241_CENTRAL_NUM = (
    2.5090809287301226727e3,
    3.3430575583588128105e4,
    6.7265770927008700853e4,
    4.5921953931549871457e4,
    1.3731693765509461125e4,
    1.9715909503065514427e3,
    1.3314166789178437745e2,
    3.3871328727963666080e0,
)
_AS241_CENTRAL_DEN = (
    5.2264952788528545610e3,
    2.8729085735721942674e4,
    3.9307895800092710610e4,
    2.1213794301586595867e4,
    5.3941960214247511077e3,
    6.8718700749205790830e2,
    4.2313330701600911252e1,
    1.0,
)
_AS241_NEAR_NUM = (
    7.7454501427834140764e-4,
    2.2723844989269184583e-2,
    2.4178072517745061177e-1,
    1.2704582524523683826e0,
    3.6478483247632046050e0,
    5.7694972214606914055e0,
    4.6303378461565452959e0,
    1.4234371107496835773e0,
)
_AS241_NEAR_DEN = (
    1.0507500716444168432e-9,
    5.4759380849953449460e-4,
    1.5198666563616457197e-2,
    1.4810397642748007459e-1,
    6.8976733498510000455e-1,
    1.6763848301838038494e0,
    2.0531916266377588219e0,
    1.0,
)
_AS241_FAR_NUM = (
    2.0103343992922881327e-7,
    2.7115555687434875782e-5,
    1.2426609473880784386e-3,
    2.6532189526576123093e-2,
    2.9656057182850489123e-1,
    1.7848265399172913358e0,
    5.4637849111641143699e0,
    6.6579046435011037772e0,
)
_AS241_FAR_DEN = (
    2.0442631033899397856e-15,
    1.4215117583164458887e-7,
    1.8463183175100546818e-5,
    7.8686913114561325910e-4,
    1.4875361290850614853e-2,
    1.3692988092273580531e-1,
    5.9983220655588793769e-1,
    1.0,
)


def _horner(coefs: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    acc = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        acc *= x
        acc += c
    return acc


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------
def norm_ppf(p: Any) -> np.ndarray:
    """Inverse CDF of the standard normal distribution, without SciPy.

    Wichura's AS241 rational approximations (the algorithm of
    :meth:`statistics.NormalDist.inv_cdf`), evaluated for all elements at once; agrees with
    ``scipy.stats.norm.ppf`` to about 1e-15 relative.

    Parameters
    ----------
    p : array_like
        Probabilities in [0, 1] (dimensionless).

    Returns
    -------
    numpy.ndarray
        Standard normal quantiles (``-inf`` at 0, ``inf`` at 1, NaN outside [0, 1] or at NaN).
    """
    p = np.asarray(p, dtype=float)
    q = p - 0.5
    # The central formula is cheap: evaluate it everywhere, then redo the few tail values.
    with np.errstate(invalid="ignore", over="ignore"):
        r = 0.180625 - q * q
        out = _horner(_AS241_CENTRAL_NUM, r) * q / _horner(_AS241_CENTRAL_DEN, r)
    tail = ~(np.abs(q) <= 0.425)
    if not tail.any():
        return out
    pt, qt = p[tail], q[tail]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(-np.log(np.where(qt <= 0.0, pt, 1.0 - pt)))
        x = np.where(
            r <= 5.0,
            _horner(_AS241_NEAR_NUM, r - 1.6) / _horner(_AS241_NEAR_DEN, r - 1.6),
            _horner(_AS241_FAR_NUM, r - 5.0) / _horner(_AS241_FAR_DEN, r - 5.0),
        )
    x = np.where(qt < 0.0, -x, x)
    # The rational functions give NaN at r = inf: the limits are the infinities.
    x = np.where(pt == 0.0, -np.inf, np.where(pt == 1.0, np.inf, x))
    out[tail] = np.where((pt < 0.0) | (pt > 1.0), np.nan, x)
    return out


def rankdata(a: Any) -> np.ndarray:
    """Ranks along the last axis, ties given their average rank, NaN left unranked.

    The same as ``scipy.stats.rankdata(row, method="average", nan_policy="omit")`` for each
    row of ``a``.

    Parameters
    ----------
    a : array_like
        Values to rank; each slice along the last axis is ranked on its own.

    Returns
    -------
    numpy.ndarray
        Ranks from 1 (float, halves at ties), same shape as ``a``; NaN where ``a`` is NaN.
    """
    a = np.asarray(a, dtype=float)
    n = a.shape[-1]
    if n == 0:
        return a.copy()
    rows = a.reshape(-1, n)
    order = np.argsort(rows, axis=-1)  # NaNs sort last
    ordered = np.take_along_axis(rows, order, axis=-1)
    # Position of each sorted value in the flat output.
    target = (order + (np.arange(rows.shape[0]) * n)[:, None]).ravel()
    ranks = np.empty(rows.size)
    tie = ordered[:, 1:] == ordered[:, :-1]
    if not tie.any():
        # Continuous draws: the ranks are the inverse permutation.
        ranks[target] = np.tile(np.arange(1.0, n + 1.0), rows.shape[0])
    else:
        idx = np.broadcast_to(np.arange(n), ordered.shape)
        starts_group = np.ones(ordered.shape, dtype=bool)
        starts_group[:, 1:] = ~tie
        ends_group = np.ones(ordered.shape, dtype=bool)
        ends_group[:, :-1] = ~tie
        first = np.maximum.accumulate(np.where(starts_group, idx, 0), axis=-1)
        last = np.flip(
            np.minimum.accumulate(np.flip(np.where(ends_group, idx, n - 1), -1), axis=-1), -1
        )
        ranks[target] = ((first + last + 2) / 2).ravel()
    ranks = ranks.reshape(a.shape)
    ranks[np.isnan(a)] = np.nan
    return ranks


def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth number >= n (``scipy.fftpack.next_fast_len``, used by ArviZ)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _as_elements(draws: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(chain, draw, *rest)`` -> contiguous ``(element, chain, draw)`` and ``rest``."""
    x = np.asarray(draws, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"draws must have dims (chain, draw, ...), got shape {x.shape}")
    rest = x.shape[2:]
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0)), rest


def _too_short(x: np.ndarray, min_chains: int) -> bool:
    """Too few chains or draws for any element: ArviZ returns NaN throughout."""
    return x.shape[1] < min_chains or x.shape[2] < MIN_DRAWS


def _invalid(x: np.ndarray, min_chains: int) -> np.ndarray:
    """Elements ArviZ returns NaN for: any NaN, too few chains or draws."""
    bad = np.isnan(x).any(axis=(1, 2))
    if _too_short(x, min_chains):
        bad[:] = True
    return bad


def _nans(rest: tuple[int, ...]) -> np.ndarray:
    return np.full(rest, np.nan)


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Halve each chain (dropping the middle draw of odd lengths): twice the chains."""
    half = x.shape[-1] // 2
    return np.concatenate((x[..., :half], x[..., x.shape[-1] - half :]), axis=-2)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each element over all its chains and draws."""
    n_el, n_chain, n_draw = x.shape
    size = n_chain * n_draw
    ranks = rankdata(x.reshape(n_el, size))
    return norm_ppf((ranks - _BLOM) / (size - 2 * _BLOM + 1)).reshape(x.shape)


def _rhat_core(x: np.ndarray) -> np.ndarray:
    """Classic R-hat of ``(element, chain, draw)``: NaN for constant elements."""
    n_draw = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        between = n_draw * np.var(np.mean(x, axis=-1), axis=-1, ddof=1)
        within = np.mean(np.var(x, axis=-1, ddof=1), axis=-1)
        return np.sqrt((between / within + n_draw - 1) / n_draw)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag (FFT, biased 1/n normalisation)."""
    n = x.shape[-1]
    m = _next_fast_len(2 * n)
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred, n=m, axis=-1)
    spectrum *= np.conjugate(spectrum)
    cov = np.fft.irfft(spectrum, n=m, axis=-1)[..., :n]
    cov /= n
    return cov


def _ess_core(x: np.ndarray) -> np.ndarray:
    """ESS of ``(element, chain, draw)`` by Geyer's initial monotone sequence.

    ArviZ's scalar loop, vectorised: autocorrelations are summed in pairs (lag 2j, 2j+1)
    until the first pair whose sum is not positive; the pair sums kept are made
    non-increasing by a running minimum.
    """
    n_el, n_chain, n_draw = x.shape
    size = n_chain * n_draw
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
        acov = _autocov(x)
        mean_var = np.mean(acov[:, :, 0], axis=1) * n_draw / (n_draw - 1.0)
        var_plus = mean_var * (n_draw - 1.0) / n_draw
        if n_chain > 1:
            var_plus += np.var(np.mean(x, axis=-1), axis=1, ddof=1)
        rho = 1.0 - (mean_var[:, None] - np.mean(acov, axis=1)) / var_plus[:, None]
        rho[:, 0] = 1.0

        n_pairs = len(range(1, n_draw - 3, 2))  # pairs j = 1..n_pairs fit ArviZ's loop
        pair = rho[:, 0 : 2 * n_pairs + 2 : 2] + rho[:, 1 : 2 * n_pairs + 2 : 2]
        # k: the pair the loop stopped at, the first one not positive (pairs 0..k-1 are).
        positive = np.zeros((n_el, n_pairs + 1), dtype=bool)
        positive[:, :n_pairs] = pair[:, :n_pairs] > 0
        k = np.argmin(positive, axis=1)
        rows = np.arange(n_el)
        even_k = rho[rows, 2 * k]
        kept_k = (k >= 1) & (pair[rows, k] >= 0)
        last = np.where((even_k > 0) | kept_k, even_k, 0.0)
        monotone = np.minimum.accumulate(pair[:, :n_pairs], axis=1)
        used = np.arange(n_pairs) < k[:, None]
        tau = -1.0 + 2.0 * np.sum(np.where(used, monotone, 0.0), axis=1) + last
        floor = 1 / np.log10(size)
        tau = np.where(floor > tau, floor, tau)
        ess = size / tau
    ess = np.where(np.isnan(rho[:, 1]), np.nan, ess)
    return np.where(constant, float(size), ess)


def _ess_mean_el(x: np.ndarray) -> np.ndarray:
    out = _ess_core(_split_chains(x))
    return np.where(_invalid(x, 1), np.nan, out)


def _reshape(values: np.ndarray, rest: tuple[int, ...]) -> np.ndarray:
    return values.reshape(rest + values.shape[1:])


# --------------------------------------------------------------------------------------------
# Public diagnostics
# --------------------------------------------------------------------------------------------
def rhat(draws: Any) -> np.ndarray:
    """Rank-normalised split R-hat: the larger of the bulk and folded (tail) values.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).

    Returns
    -------
    numpy.ndarray
        R-hat of each element (dimensionless, shape ``rest``); NaN with fewer than 2 chains
        or 4 draws, with a NaN draw, or for a constant element.
    """
    x, rest = _as_elements(draws)
    if _too_short(x, 2):
        return _nans(rest)
    bad = _invalid(x, 2)
    split = _split_chains(x)
    bulk = _rhat_core(_z_scale(split))
    with np.errstate(invalid="ignore"):
        folded = np.abs(split - np.median(split, axis=(1, 2), keepdims=True))
        tail = _rhat_core(_z_scale(folded))
        # ArviZ takes Python's max(bulk, tail): a NaN tail keeps the bulk value.
        out = np.where(tail > bulk, tail, bulk)
    return _reshape(np.where(bad, np.nan, out), rest)


def ess_bulk(draws: Any) -> np.ndarray:
    """Bulk effective sample size: ESS of the rank-normalised split chains.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).

    Returns
    -------
    numpy.ndarray
        Effective number of draws of each element (shape ``rest``).
    """
    x, rest = _as_elements(draws)
    if _too_short(x, 1):
        return _nans(rest)
    out = _ess_core(_z_scale(_split_chains(x)))
    return _reshape(np.where(_invalid(x, 1), np.nan, out), rest)


def ess_tail(draws: Any, *, prob: float | Sequence[float] = TAIL_PROB) -> np.ndarray:
    """Tail effective sample size: the smaller ESS of the two tail-quantile indicators.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).
    prob : float or (float, float), default :data:`TAIL_PROB`
        A probability ``p`` (the quantiles ``1 - p`` and ``p`` are used) or the two
        quantile probabilities themselves.

    Returns
    -------
    numpy.ndarray
        Effective number of draws of each element (shape ``rest``).
    """
    probs = sorted((prob, 1 - prob)) if not isinstance(prob, Sequence) else list(prob)
    x, rest = _as_elements(draws)
    if _too_short(x, 1):
        return _nans(rest)
    bad = _invalid(x, 1)
    low, high = (_ess_quantile(x, p) for p in probs)
    out = np.where(high < low, high, low)
    return _reshape(np.where(bad, np.nan, out), rest)


def _ess_quantile(x: np.ndarray, prob: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # inf draws interpolate to NaN, as in ArviZ
        quantile = np.quantile(x, prob, axis=(1, 2))
    below = (x <= quantile[:, None, None]).astype(float)
    return _ess_core(_split_chains(below))


def ess_mean(draws: Any) -> np.ndarray:
    """Effective sample size for the mean: ESS of the split chains, no rank normalisation.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).

    Returns
    -------
    numpy.ndarray
        Effective number of draws of each element (shape ``rest``).
    """
    x, rest = _as_elements(draws)
    if _too_short(x, 1):
        return _nans(rest)
    return _reshape(_ess_mean_el(x), rest)


def mcse_mean(draws: Any) -> np.ndarray:
    """Monte Carlo standard error of the posterior mean: ``sd / sqrt(ess_mean)``.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).

    Returns
    -------
    numpy.ndarray
        Standard error of each element's mean (units of ``draws``, shape ``rest``).
    """
    x, rest = _as_elements(draws)
    if _too_short(x, 1):
        return _nans(rest)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        sd = np.std(x, axis=(1, 2), ddof=1)
        out = sd / np.sqrt(_ess_mean_el(x))
    return _reshape(np.where(_invalid(x, 1), np.nan, out), rest)


def mcse_sd(draws: Any) -> np.ndarray:
    """Monte Carlo standard error of the posterior sd (delta method on the variance).

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).

    Returns
    -------
    numpy.ndarray
        Standard error of each element's sd (units of ``draws``, shape ``rest``).
    """
    x, rest = _as_elements(draws)
    if _too_short(x, 1):
        return _nans(rest)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        centred = x - x.mean(axis=(1, 2), keepdims=True)
        squared = centred**2
        ess = _ess_mean_el(squared)
        evar = squared.mean(axis=(1, 2))
        varvar = ((centred**4).mean(axis=(1, 2)) - evar**2) / ess
        out = np.sqrt(varvar / evar / 4)
    return _reshape(np.where(_invalid(x, 1), np.nan, out), rest)


def hdi(draws: Any, prob: float) -> np.ndarray:
    """Highest-density interval: the narrowest interval between draws holding ``prob``.

    Parameters
    ----------
    draws : array_like
        Posterior draws, dims ``(chain, draw, *rest)`` (any unit).
    prob : float
        Probability mass inside the interval, in (0, 1].

    Returns
    -------
    numpy.ndarray
        Lower and upper bounds, shape ``rest + (2,)`` (units of ``draws``).
    """
    if not 1 >= prob > 0:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    x, rest = _as_elements(draws)
    n = x.shape[1] * x.shape[2]
    ordered = np.sort(x.reshape(x.shape[0], n), axis=-1)
    width = min(int(np.floor(prob * n)), n - 1)
    widths = np.subtract(ordered[:, width:], ordered[:, : n - width], dtype=np.float64)
    start = np.argmin(widths, axis=-1)
    rows = np.arange(x.shape[0])
    bounds = np.stack((ordered[rows, start], ordered[rows, start + width]), axis=-1)
    return _reshape(bounds, rest)


# --------------------------------------------------------------------------------------------
# Summary table
# --------------------------------------------------------------------------------------------
def summary_table(
    posterior: xr.Dataset | xr.DataTree,
    var_names: Sequence[str] | None = None,
    prob: float = 0.94,
) -> pd.DataFrame:
    """Posterior summary: the table ``arviz.summary(..., ci_kind="hdi", round_to="none")`` gives.

    Parameters
    ----------
    posterior : xarray.Dataset or xarray.DataTree
        Draws with dims ``chain`` and ``draw`` (a DataTree with a ``posterior`` group is
        accepted too).
    var_names : sequence of str, optional
        Variables to summarise, in this order (default: all).
    prob : float, default 0.94
        Probability mass of the highest-density interval.

    Returns
    -------
    pandas.DataFrame
        One row per element, labelled ``name`` or ``name[coord, ...]``; columns ``mean``,
        ``sd``, ``hdi{pct}_lb``, ``hdi{pct}_ub`` (``pct = int(100 prob)``), ``ess_bulk``,
        ``ess_tail``, ``r_hat``, ``mcse_mean``, ``mcse_sd``.
    """
    # pandas is imported where used: the diagnostics are numpy; only the table needs pandas
    import pandas as pd

    if hasattr(posterior, "children") and "posterior" in posterior.children:
        # A child of a DataTree is a group (DataTree), not a variable (DataArray).
        posterior = cast("xr.DataTree", posterior["posterior"])
    if hasattr(posterior, "to_dataset"):
        posterior = posterior.to_dataset()
    posterior = cast("xr.Dataset", posterior)  # a Dataset now, whichever was passed
    names = list(posterior.data_vars) if var_names is None else list(var_names)
    pct = int(prob * 100)
    columns = [
        "mean",
        "sd",
        f"hdi{pct}_lb",
        f"hdi{pct}_ub",
        "ess_bulk",
        "ess_tail",
        "r_hat",
        "mcse_mean",
        "mcse_sd",
    ]
    labels: list[str] = []
    blocks: list[np.ndarray] = []
    for name in names:
        da = posterior[name]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        values = da.transpose("chain", "draw", *other).to_numpy()
        x = values.reshape(values.shape[0], values.shape[1], -1)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            n = x.shape[0] * x.shape[1]
            sd = np.std(x, axis=(0, 1), ddof=1) if n >= 2 else np.full(x.shape[2], np.nan)
            interval = hdi(x, prob)
            blocks.append(
                np.column_stack(
                    (
                        np.mean(x, axis=(0, 1)),
                        sd,
                        interval[:, 0],
                        interval[:, 1],
                        ess_bulk(x),
                        ess_tail(x),
                        rhat(x),
                        mcse_mean(x),
                        mcse_sd(x),
                    )
                )
            )
        if not other:
            labels.append(str(name))
            continue
        coords = [da[d].to_numpy() for d in other]
        for index in np.ndindex(*values.shape[2:]):
            inner = ", ".join(f"{c[i]}" for c, i in zip(coords, index, strict=True))
            labels.append(f"{name}[{inner}]")
    data = np.concatenate(blocks) if blocks else np.empty((0, len(columns)))
    return pd.DataFrame(data, index=pd.Index(labels), columns=pd.Index(columns))
