"""Priors as data: a small, serialisable description of a prior distribution.

A :class:`Prior` names a PyMC distribution and its numeric parameters. Laws provide default
priors computed from a summary of the runs table (so scales follow the data's units); users
override any of them by parameter name, from Python or from a JSON/TOML file. The priors actually
used are stored in the saved fit, so a fit file says exactly what it assumed.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayescale.core.errors import ConfigError, UnknownNameError, did_you_mean

__all__ = ["DISTRIBUTIONS", "Prior", "load_priors", "merge_priors"]

#: Distributions a prior may use, with their required parameters. Kept small on purpose: every
#: entry must be creatable in PyMC and evaluable with SciPy (for the exact path and for checks).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "LogNormal": ("mu", "sigma"),
    "Gamma": ("alpha", "beta"),
    "Exponential": ("lam",),
    "StudentT": ("nu", "mu", "sigma"),
    "HalfStudentT": ("nu", "sigma"),
    "Uniform": ("lower", "upper"),
    "Beta": ("alpha", "beta"),
}


@dataclass(frozen=True)
class Prior:
    """A prior distribution given by a PyMC distribution name and numeric parameters.

    Parameters
    ----------
    dist : str
        Name of a PyMC distribution, one of :data:`DISTRIBUTIONS`.
    **params : float
        Its parameters, in the units of the (sampling-space) parameter it applies to.

    Examples
    --------
    >>> p = Prior("Normal", mu=0.1, sigma=0.05)
    >>> p.to_dict()
    {'dist': 'Normal', 'mu': 0.1, 'sigma': 0.05}
    >>> Prior.from_dict(p.to_dict()) == p
    True
    """

    dist: str
    params: dict[str, float] = field(default_factory=dict)

    def __init__(self, dist: str, **params: float) -> None:
        if dist not in DISTRIBUTIONS:
            raise ConfigError(
                f"unknown prior distribution {dist!r}. " + did_you_mean(dist, list(DISTRIBUTIONS))
            )
        needed = DISTRIBUTIONS[dist]
        missing = [p for p in needed if p not in params]
        extra = [p for p in params if p not in needed]
        if missing or extra:
            raise ConfigError(
                f"prior {dist} takes parameters ({', '.join(needed)}); got ({', '.join(params)})"
            )
        clean: dict[str, float] = {}
        for key in needed:
            try:
                value = float(params[key])
            except (TypeError, ValueError):
                raise ConfigError(
                    f"prior {dist} parameter {key} must be a number, got {params[key]!r}"
                ) from None
            if not math.isfinite(value):
                raise ConfigError(f"prior {dist} parameter {key} must be finite, got {value}")
            clean[key] = value
        for key in ("sigma", "lam", "nu", "alpha", "beta"):
            if key in clean and clean[key] <= 0:
                raise ConfigError(
                    f"prior {dist} parameter {key} must be positive, got {clean[key]}"
                )
        if dist == "Uniform" and clean["lower"] >= clean["upper"]:
            raise ConfigError(
                f"prior Uniform needs lower < upper, got {clean['lower']} >= {clean['upper']}"
            )
        object.__setattr__(self, "dist", dist)
        object.__setattr__(self, "params", clean)

    def __hash__(self) -> int:
        return hash((self.dist, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"Prior({self.dist!r}, {args})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict ``{"dist": ..., <param>: value, ...}``."""
        return {"dist": self.dist, **self.params}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Prior:
        """Build a prior from ``{"dist": "Normal", "mu": 0, "sigma": 1}``."""
        if not isinstance(spec, Mapping) or "dist" not in spec:
            raise ConfigError(f"a prior must be a mapping with a 'dist' key, got {spec!r}")
        params = {k: v for k, v in spec.items() if k != "dist"}
        return cls(str(spec["dist"]), **params)

    def create(self, name: str, *, dims: str | tuple[str, ...] | None = None, **kwargs: Any) -> Any:
        """Create the PyMC random variable ``name`` in the current model context.

        Parameters may be overridden by tensors in ``kwargs`` (used to feed hyperparameters as
        data so compiled models can be reused across datasets).
        """
        # numpy, scipy and pymc are imported where used: `from bayescale import Prior` and priors
        # read as data stay free of them; only using a distribution needs them (pymc ~0.7 s)
        import pymc as pm

        params: dict[str, Any] = {**self.params, **kwargs}
        return getattr(pm, self.dist)(name, dims=dims, **params)

    def ppf(self, q: Any) -> Any:
        """Quantiles of the prior at probabilities ``q`` (array-like in (0, 1)).

        Closed forms for the families bayescale's default priors use, so that starting a fit
        does not import :mod:`scipy.stats` (a third of a second of a command-line fit);
        other families go through :meth:`scipy`.
        """
        import numpy as np

        from bayescale.core.stats import norm_ppf as z

        q = np.asarray(q, dtype=float)
        p = self.params
        match self.dist:
            case "Normal":
                return p["mu"] + p["sigma"] * z(q)
            case "LogNormal":
                return np.exp(p["mu"] + p["sigma"] * z(q))
            case "HalfNormal":
                return p["sigma"] * z((1.0 + q) / 2.0)
            case "Exponential":
                return -np.log1p(-q) / p["lam"]
            case "Uniform":
                return p["lower"] + q * (p["upper"] - p["lower"])
        return self.scipy().ppf(q)

    def scipy(self) -> Any:
        """Return the equivalent frozen :mod:`scipy.stats` distribution."""
        from scipy import stats

        p = self.params
        match self.dist:
            case "Normal":
                return stats.norm(p["mu"], p["sigma"])
            case "HalfNormal":
                return stats.halfnorm(scale=p["sigma"])
            case "LogNormal":
                return stats.lognorm(s=p["sigma"], scale=math.exp(p["mu"]))
            case "Gamma":
                return stats.gamma(a=p["alpha"], scale=1.0 / p["beta"])
            case "Exponential":
                return stats.expon(scale=1.0 / p["lam"])
            case "StudentT":
                return stats.t(df=p["nu"], loc=p["mu"], scale=p["sigma"])
            case "HalfStudentT":
                return _FoldedT(p["nu"], p["sigma"])
            case "Uniform":
                return stats.uniform(loc=p["lower"], scale=p["upper"] - p["lower"])
            case "Beta":
                return stats.beta(p["alpha"], p["beta"])
        raise AssertionError(self.dist)  # pragma: no cover - guarded in __init__


class _FoldedT:
    """Half-Student-t: SciPy has no frozen version, so provide the methods we use."""

    def __init__(self, nu: float, sigma: float) -> None:
        from scipy import stats

        self._t = stats.t(df=nu, scale=sigma)

    def logpdf(self, x: Any) -> Any:
        import numpy as np

        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, np.log(2.0) + self._t.logpdf(x), -np.inf)

    def ppf(self, q: Any) -> Any:
        # P(|T| <= x) = 2 F_t(x) - 1. The exact sampler sizes its sigma grid with ppf(0.9999).
        return self._t.ppf((1.0 + q) / 2.0)

    def rvs(self, size: Any = None, random_state: Any = None) -> Any:
        import numpy as np

        return np.abs(self._t.rvs(size=size, random_state=random_state))


def merge_priors(
    defaults: Mapping[str, Prior],
    overrides: Mapping[str, Prior | Mapping[str, Any]] | None,
    *,
    law_name: str,
) -> dict[str, Prior]:
    """Return ``defaults`` with user ``overrides`` applied by parameter name.

    Raises
    ------
    UnknownNameError
        If an override names a parameter the model does not have.
    """
    merged = dict(defaults)
    for name, spec in (overrides or {}).items():
        if name not in defaults:
            raise UnknownNameError(
                f"law {law_name!r} has no parameter {name!r} to put a prior on. "
                + did_you_mean(name, list(defaults))
            )
        merged[name] = spec if isinstance(spec, Prior) else Prior.from_dict(spec)
    return merged


def load_priors(path: str | Path) -> dict[str, Prior]:
    """Read prior overrides from a JSON or TOML file.

    The file maps parameter names to prior specs, e.g. in TOML::

        [alpha_N]
        dist = "Normal"
        mu = 0.076
        sigma = 0.02
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read priors file {str(path)!r}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"priors file {str(path)!r} is not valid {path.suffix[1:] or 'JSON'}: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"priors file {str(path)!r} must map parameter names to priors")
    return {str(k): Prior.from_dict(v) for k, v in raw.items()}
