"""One self-contained HTML report of one or more fits.

The report holds, per fit: the data table summary, the parameter table with HDIs and sampler
diagnostics (warnings in a red box at the top), every figure of :mod:`bayescale.plots` that
applies to the fitted law, predictions at the sizes asked for, the overfitting check where the
law has one and, optionally, a leave-largest-out backtest; with several fits, a PSIS-LOO
comparison table. Images are PNG data URIs and the page has no script and no external
reference, so it opens offline and can be mailed as one file. Every piece of user-supplied
text (file names, column names, group labels) goes through :func:`html.escape`.

Figures keep a fixed size however many groups or parameters a fit has: the diagnostic plots
show the first quantities of :func:`bayescale.plots.diagnostic_params` (population level first;
the caption says how many were left out, the parameter table has them all), and each image's
text alternative names the quantities it shows.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale import __version__, plots
from bayescale.core.checks import check_prob
from bayescale.core.errors import BayescaleError, ConfigError, SamplingWarning
from bayescale.core.files import atomic_write_text
from bayescale.plots import diagnostic_params
from bayescale.plots.style import file_metadata, style
from bayescale.questions.optimal import optimal
from bayescale.questions.overfit import overfit
from bayescale.questions.selection import compare_fits

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayescale.fitting.result import Fit

__all__ = ["build_report", "figure_data_uri", "write_report"]

_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td.name,th.name{text-align:left}
.warn{background:#fde8e0;border:2px solid #D55E00;padding:.6em 1em;margin:1em 0}
.ok{background:#e6f4ee;border:1px solid #009E73;padding:.4em 1em;margin:1em 0}
.note{color:#555;font-size:.9em}
figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{font-size:.9em;color:#444}
"""


def figure_data_uri(fig: Figure) -> str:
    """Return a figure as a ``data:image/png;base64,...`` URI (PNG, 100 dpi)."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", metadata=file_metadata("png"))
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class _Section:
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.parts.append(text)

    def html(self) -> str:
        return f"<h2>{_e(self.title)}</h2>\n" + "\n".join(self.parts)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(x: Any, spec: str = ".4g") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return "nan" if not np.isfinite(v) else format(v, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, names: int = 1) -> str:
    """Return an HTML table; the first ``names`` columns are left-aligned text, the rest numbers."""
    head = "".join(
        f'<th class="name">{_e(h)}</th>' if i < names else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="name">{_e(v)}</td>' if i < names else f"<td>{_num(v)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(fig: Figure, caption: str, alt: str | None = None) -> str:
    """Return a ``<figure>``: the image, its text alternative (default the caption), caption."""
    return (
        f'<figure><img alt="{_e(alt or caption)}" src="{figure_data_uri(fig)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _try_figure(
    section: _Section, make: Callable[[], Figure], caption: str, alt: str | None = None
) -> None:
    """Add a figure; a figure that does not apply to this fit becomes a note instead."""
    try:
        section.add(_figure(make(), caption, alt))
    except BayescaleError as exc:
        section.add(f'<p class="note">{_e(caption)}: not drawn ({_e(exc)})</p>')


def _diagnostic_figure(
    section: _Section, fit: Fit, plot: Callable[..., Figure], limit: int, caption: str
) -> None:
    """Add one ArviZ diagnostic plot of at most ``limit`` quantities, naming those shown.

    The quantities are the first of :func:`bayescale.plots.diagnostic_params` (population
    level first); when some are left out the caption says how many, since the parameter
    table above has them all.
    """
    names = diagnostic_params(fit)
    shown = names[:limit]
    alt = f"{caption}: {', '.join(shown)}" if shown else caption
    if len(shown) < len(names):
        caption += f"; {len(shown)} of {len(names)} quantities, the population level first"
    _try_figure(section, lambda: plot(fit, var_names=shown or None), caption, alt)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------
def _data_section(fit: Fit, s: _Section) -> None:
    runs = fit.runs
    rows = []
    for name in runs.data_vars:
        values = runs[name].values
        if np.issubdtype(values.dtype, np.number):
            v = values.astype(float)
            rows.append([name, "number", np.nanmin(v), np.nanmax(v), int(np.isfinite(v).sum())])
        else:
            levels = list(dict.fromkeys(values.astype(str).tolist()))
            shown = ", ".join(levels[:8]) + (" ..." if len(levels) > 8 else "")
            rows.append([name, f"{len(levels)} levels: {shown}", "", "", len(values)])
    law = f"<b>{_e(fit.law.name)}</b>: <code>{_e(fit.law.formula)}</code>"
    s.add(f"<p>{fit.n_runs} runs; law {law}</p>")
    s.add(_table(["column", "kind", "min", "max", "values"], rows, names=2))


def _params_section(fit: Fit, s: _Section, prob: float) -> None:
    doc = fit.summary_dict(prob=prob)
    diag = doc["diagnostics"]
    if diag["warnings"]:
        items = "".join(f"<li>{_e(w)}</li>" for w in diag["warnings"])
        s.add(f'<div class="warn"><b>Sampler warnings</b><ul>{items}</ul></div>')
    else:
        s.add('<div class="ok">Sampler diagnostics: no problems found.</div>')
    pct = f"{prob:.0%}"
    rows = [
        [name, r["mean"], r["sd"], r["hdi_low"], r["hdi_high"], r["r_hat"], r["ess_bulk"]]
        for name, r in doc["params"].items()
    ]
    s.add(
        _table(
            ["parameter", "mean", "sd", f"{pct} HDI low", f"{pct} HDI high", "R-hat", "bulk ESS"],
            rows,
        )
    )
    settings = fit.settings
    s.add(
        f'<p class="note">sampler {_e(settings.get("sampler"))}, {_e(settings.get("chains"))} '
        f"chains x {_e(settings.get('draws'))} draws; divergences {diag['divergences']}, max "
        f"R-hat {_num(diag['max_r_hat'], '.3f')}, min bulk ESS {_num(diag['min_ess_bulk'], '.0f')}"
        "</p>"
    )


def _figures_section(fit: Fit, s: _Section, targets: Mapping[str, Sequence[float]]) -> None:

    if fit.meta.get("run_effect"):
        _try_figure(s, lambda: plots.plot_curves(fit), "learning curves and extrapolation bands")
    elif fit.pooling is not None:
        for name in fit.law.inputs:
            _try_figure(
                s,
                functools.partial(plots.plot_groups, fit, input=name),
                f"loss against {name} by {fit.pooling.dim}, with the band of a new group",
            )
    else:
        for name in fit.law.inputs:
            _try_figure(
                s,
                functools.partial(plots.plot_law, fit, input=name, targets=targets.get(name, ())),
                f"runs, posterior-mean law and 50%/94% bands against {name}",
            )
        if set(fit.law.inputs) == {"N", "D"}:
            _try_figure(s, lambda: plots.plot_overfit_map(fit), "overfitting penalty over (N, D)")
            _try_figure(s, lambda: plots.plot_frontier(fit), "compute-optimal frontier")
    diagnostics = [
        (plots.plot_rank, plots.MAX_PANEL_PARAMS, "rank plots (flat when the chains agree)"),
        (plots.plot_pair, plots.MAX_PAIR_PARAMS, "pair plot of the parameters"),
    ]
    if "prior" in fit.tree.children:
        diagnostics.append(
            (plots.plot_prior_posterior, plots.MAX_PANEL_PARAMS, "prior against posterior")
        )
    for plot, limit, caption in diagnostics:
        _diagnostic_figure(s, fit, plot, limit, caption)


def _predictions_section(
    fit: Fit, s: _Section, N: Sequence[float], C: Sequence[float], prob: float
) -> None:
    # the predictions are imported where used: importing the report costs numpy only; the
    # predictions (xarray) load with the section that uses them
    from bayescale.questions.predict import predict

    inputs = fit.law.inputs
    asked = {"N": list(N), "C": list(C)}
    direct = [k for k in inputs if asked.get(k)]
    if fit.meta.get("run_effect") or (not N and not C):
        return
    if len(inputs) == 1 and direct:
        name = inputs[0]
        group: dict[str, Any] = {"new_group": True} if fit.pooling is not None else {}
        p = predict(fit, {name: asked[name]}, prob=prob, **group).summary()
        rows = []
        for j, x in enumerate(asked[name]):
            e = p.sel(point=j, quantity="expected")
            o = p.sel(point=j, quantity="observed")
            rows.append([_num(x, ".3g"), e["mean"].item(), *e["hdi"].values, *o["hdi"].values])
        pct = f"{prob:.0%}"
        s.add(
            _table(
                [name, "mean loss", f"expected {pct} low", "high", f"one run {pct} low", "high"],
                rows,
            )
        )
        if fit.pooling is not None:
            s.add('<p class="note">for a new group (parameters drawn from the population)</p>')
        _try_figure(s, lambda: plots.plot_fan(fit, {name: asked[name]}, **group), "predictive fan")
    elif set(inputs) == {"N", "D"} and fit.pooling is None:
        if C:
            doc = optimal(fit, C, prob=prob).to_dict()
            rows = [
                [
                    _num(r["C"], ".3g"),
                    r["N_opt"]["mean"],
                    r["N_opt"]["lo"],
                    r["N_opt"]["hi"],
                    r["D_opt"]["mean"],
                    r["loss"]["mean"],
                    r["loss"]["lo"],
                    r["loss"]["hi"],
                ]
                for r in doc["points"]
            ]
            s.add("<h3>compute-optimal allocation at the asked budgets</h3>")
            s.add(
                _table(["C (FLOPs)", "N_opt", "low", "high", "D_opt", "loss", "low", "high"], rows)
            )
        if N:
            doc = overfit(fit, inputs={"N": list(N)}, prob=prob).to_dict()
            rows = [
                [_num(r["N"], ".3g"), r["D_min"]["mean"], r["D_min"]["lo"], r["D_min"]["hi"]]
                for r in doc["points"]
            ]
            s.add("<h3>data needed at the asked model sizes (penalty below epsilon)</h3>")
            s.add(_table(["N", "D_min (tokens)", "low", "high"], rows))
    else:
        s.add(
            f'<p class="note">--N/--C do not apply to law {_e(fit.law.name)} (inputs '
            f"{_e(', '.join(inputs))}) here</p>"
        )


def _overfit_section(fit: Fit, s: _Section) -> None:

    if set(fit.law.inputs) != {"N", "D"} or fit.pooling is not None:
        return
    doc = overfit(fit).to_dict()
    flagged = [r for r in doc["runs"] if r["overfit"]]
    ex = doc["exponent"]
    s.add(
        f"<h3>overfitting check</h3><p>{len(flagged)} of {len(doc['runs'])} runs flagged "
        f"(P(delta_L &gt; {doc['epsilon']:g}) &gt; 0.5). Data needed D_min ∝ N^γ with γ = "
        f"{_num(ex['mean'], '.3g')} [{_num(ex['lo'], '.3g')}, {_num(ex['hi'], '.3g')}] "
        "(Kaplan et al.: 0.74).</p>"
    )
    if flagged:
        rows = [[r["index"], r["N"], r["D"], r["delta_L_mean"], r["p_overfit"]] for r in flagged]
        s.add(_table(["run", "N", "D", "mean delta_L", "P(overfit)"], rows))


def _backtest_section(fit: Fit, s: _Section, prob: float) -> None:
    from bayescale.questions.backtest import backtest

    if fit.meta.get("run_effect"):
        s.add('<p class="note">backtest: not run for learning-curve fits</p>')
        return
    settings = fit.settings
    by = fit.law.inputs[0]
    k = max(1, fit.n_runs // 10)
    result = backtest(
        fit.runs,
        fit.law,
        holdout_top=k,
        by=by,
        prob=prob,
        groups=fit.meta.get("groups") or (),
        sampler=settings.get("sampler", "nutpie"),
        draws=int(settings.get("draws", 500)),
        tune=int(settings.get("tune", 500)),
        chains=int(settings.get("chains", 2)),
        seed=int(settings.get("seed", 0)),
    )
    t = result.totals
    s.add(
        f"<h3>backtest: the {k} runs largest in {_e(by)} held out</h3><p>coverage "
        f"{t['coverage']:.0%} (nominal {prob:.0%}), mean interval width "
        f"{_num(t['mean_width'], '.3g')} nats/token, mean interval score "
        f"{_num(t['mean_interval_score'], '.3g')}, mean log score "
        f"{_num(t['mean_log_score'], '.3g')}</p>"
    )
    s.add(_figure(plots.plot_coverage(result), "backtest: held-out runs against their bands"))


def _comparison_section(fits: Mapping[str, Fit]) -> str:

    s = _Section("comparison")
    rows = [[n, f.law.name, f.n_runs, len(f.diagnostics.problems)] for n, f in fits.items()]
    s.add(_table(["fit", "law", "runs", "sampler warnings"], rows, names=2))
    try:
        # A Pareto-k warning belongs in the report, next to the table it qualifies.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SamplingWarning)
            table = compare_fits(fits)
    except BayescaleError as exc:
        s.add(f'<p class="note">LOO comparison not possible: {_e(exc)}</p>')
        return s.html()
    problems = [str(w.message) for w in caught if issubclass(w.category, SamplingWarning)]
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems)
        s.add(f'<div class="warn"><b>LOO warnings</b><ul>{items}</ul></div>')
    cols = [c for c in ("rank", "elpd", "p", "elpd_diff", "weight", "se", "dse") if c in table]
    rows = [[name, *(table.loc[name, c] for c in cols)] for name in table.index]
    s.add("<p>PSIS-LOO, best first (elpd: expected log predictive density, higher is better)</p>")
    s.add(_table(["fit", *cols], rows))
    return s.html()


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def build_report(
    fits: Mapping[str, Fit],
    *,
    N: Sequence[float] = (),
    C: Sequence[float] = (),
    backtest: bool = False,
    prob: float = 0.94,
    title: str = "bayescale report",
) -> str:
    """Return the HTML text of a report on one or more fits.

    Parameters
    ----------
    fits : mapping of str to Fit
        Fits by display name (e.g. file name); names are HTML-escaped.
    N : sequence of float
        Model sizes (parameters) to predict at or, for laws of N and D, to give the data
        needed for.
    C : sequence of float
        Compute budgets (FLOPs) to predict at (``power_c``) or to give the compute-optimal
        allocation for (``kaplan_nd``, ``chinchilla``).
    backtest : bool
        Also refit each law without its largest tenth of runs and score the held-out runs
        (costs one fit per law).
    prob : float, default 0.94
        HDI probability of tables.
    title : str
        Page title.

    Returns
    -------
    str
        A complete HTML document with images embedded as data URIs.
    """
    if not fits:
        raise ConfigError("a report needs at least one fit")
    check_prob(prob)
    for name, values in (("N", N), ("C", C)):
        if any(not (np.isfinite(v) and v > 0) for v in values):
            raise ConfigError(f"--{name} values must be positive and finite, got {list(values)}")
    targets = {"N": list(N), "C": list(C)}
    body = [f"<h1>{_e(title)}</h1>"]
    body.append(
        f'<p class="note">bayescale {_e(__version__)}; fits: '
        + ", ".join(f"<code>{_e(n)}</code>" for n in fits)
        + "</p>"
    )
    if len(fits) > 1:
        body.append(_comparison_section(fits))
    for name, fit in fits.items():
        s = _Section(f"{name}: {fit.law.name}")
        _params_section(fit, s, prob)
        _data_section(fit, s)
        _predictions_section(fit, s, N, C, prob)
        _overfit_section(fit, s)
        _figures_section(fit, s, targets)
        if backtest:
            _backtest_section(fit, s, prob)
        body.append(s.html())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(paths: Sequence[str | Path], output: str | Path, **options: Any) -> Path:
    """Load fit files, build the report and write it atomically to ``output``.

    Parameters
    ----------
    paths : sequence of str or Path
        Fit files written by ``bayescale fit``; each is named by its file name.
    output : str or Path
        HTML file to write (its directory must exist).
    **options
        Passed to :func:`build_report`.

    Returns
    -------
    Path
        The file written.
    """
    from bayescale.fitting.result import load_fit

    out = Path(output)
    if not out.parent.exists():
        raise ConfigError(
            f"cannot write {str(out)!r}: directory {str(out.parent)!r} does not exist"
        )
    names: dict[str, Fit] = {}
    for p in paths:
        name = Path(p).name
        while name in names:  # same file name in two directories
            name = str(Path(p))
        names[name] = load_fit(p)
    atomic_write_text(out, build_report(names, **options))
    return out
