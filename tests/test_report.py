"""The HTML report: self-contained, escaped, every image decodes, opens in headless Chromium.

The Chromium check needs Debian's ``chromium`` (``apt-get install -y chromium``); it runs the
browser with ``--headless --no-sandbox``, reads console messages from its log, and counts images
that failed to decode with a probe script added to a copy of the report (the report itself has
no script).
"""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from _plot_fits import EVIL, curve_fit, grouped_fit, kaplan_fit, power_fit, simulate_law

import bayescale as bs
from bayescale.cli.app import main
from bayescale.core.errors import ConfigError
from bayescale.report import build_report

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
PROBE = (
    "<script>window.addEventListener('load',()=>{const im=[...document.images];"
    "const bad=im.filter(i=>!(i.complete&&i.naturalWidth>0)).length;"
    "document.body.setAttribute('data-images',im.length+'/'+bad);"
    "if(bad)console.error('undecoded images '+bad)});</script>"
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The small fits saved to files, as the command line sees them."""
    root = tmp_path_factory.mktemp("fits")
    paths = {}
    for name, fit in {
        "kaplan.nc": kaplan_fit(),
        "grouped.nc": grouped_fit(),
        "curves.nc": curve_fit(),
        "power.nc": power_fit(),
    }.items():
        paths[name] = fit.save(root / name)
    return paths


@pytest.fixture(scope="module")
def report(saved, tmp_path_factory):
    """One report of every kind of fit, written by the command line."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    argv = ["report", *(str(p) for p in saved.values()), "--N", "1e10", "--C", "1e22"]
    assert main([*argv, "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def _images(text):
    from PIL import Image

    out = []
    for data in DATA_URI.findall(text):
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()  # decodes the whole file: raises on a truncated or corrupt PNG
        out.append(image)
    return out


def test_report_is_self_contained_and_images_decode(report):
    images = _images(report)
    assert len(images) == report.count("<figcaption>") >= 17
    for caption in (
        "runs, posterior-mean law and 50%/94% bands against N",
        "runs, posterior-mean law and 50%/94% bands against D",
        "overfitting penalty over (N, D)",
        "compute-optimal frontier",
        "loss against N by family, with the band of a new group",
        "learning curves and extrapolation bands",
        "predictive fan",
        "rank plots (flat when the chains agree)",
        "pair plot of the parameters",
        "prior against posterior",
    ):
        assert f"<figcaption>{caption}</figcaption>" in report
    assert "not drawn" not in report
    assert all(im.format == "PNG" and min(im.size) > 100 for im in images)
    assert report.count("<img") == len(images)
    # No network: nothing is fetched, and no script at all.
    assert not re.search(r"(src|href)=\"(?!data:)", report)
    assert "<script" not in report.lower()


def test_report_escapes_user_text(report):
    assert EVIL not in report
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in report


def test_report_has_tables_and_checks(report):
    for fit_name in ("kaplan.nc", "grouped.nc", "curves.nc", "power.nc"):
        assert f"<h2>{fit_name}:" in report
    assert report.count("HDI low") >= 4  # one parameter table per fit
    assert "compute-optimal allocation at the asked budgets" in report
    assert "data needed at the asked model sizes" in report
    assert "overfitting check" in report
    assert "comparison" in report and "LOO comparison not possible" in report  # different runs
    # Sampler warnings of the short test fits are shown in the warning box.
    assert 'class="warn"' in report


def test_report_comparison_of_fits_of_the_same_runs():
    runs = simulate_law("power_n", n_runs=20, noise_sd=0.02, seed=3)
    a = bs.fit(runs, "power_n", sampler="exact", draws=200, chains=2, seed=0)
    b = bs.fit(runs, "power_n", sampler="exact", draws=200, chains=2, seed=1)
    text = build_report({"a": a, "b": b})
    assert "PSIS-LOO" in text
    table = text.split("PSIS-LOO")[1]
    assert "elpd" in table and "weight" in table
    # 20 runs and 200 draws: some runs are influential, and the report says so.
    assert "LOO warnings" in text


def test_report_backtest_and_predictions():
    text = build_report({"power": power_fit()}, N=[1e10, 1e11], backtest=True)
    assert "backtest: the 2 runs largest in N held out" in text
    assert "coverage" in text
    # predictions table: one row per asked N
    assert "1e+10</td>" in text and "1e+11</td>" in text
    assert len(_images(text)) == 4 + 1 + 1  # law, rank, pair, prior-posterior; fan; coverage


def test_report_opens_in_headless_chromium(report, tmp_path):
    browser = next(
        (
            shutil.which(b)
            for b in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(b)
        ),
        None,
    )
    assert browser, "headless Chromium is needed: apt-get install -y chromium"
    page = tmp_path / "probe.html"
    page.write_text(report.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    n = len(DATA_URI.findall(report))
    assert f'data-images="{n}/0"' in done.stdout


def test_probe_catches_a_broken_image(tmp_path):
    """The Chromium check can fail: a corrupt image is reported on the console."""
    browser = shutil.which("chromium")
    assert browser, "headless Chromium is needed: apt-get install -y chromium"
    page = tmp_path / "bad.html"
    page.write_text(f'<html><body><img src="data:image/png;base64,AAAA">{PROBE}</body></html>')
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert any("undecoded images 1" in line for line in done.stderr.splitlines())


def test_bad_input_exits_2_with_one_line(tmp_path, capsys, saved):
    missing = tmp_path / "nope.nc"
    assert main(["report", str(missing), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    out = tmp_path / "no_such_dir" / "r.html"
    assert main(["report", str(saved["power.nc"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert not out.parent.exists()


def test_build_report_validates_options():
    with pytest.raises(ConfigError, match="at least one fit"):
        build_report({})
    with pytest.raises(ConfigError, match="positive"):
        build_report({"p": power_fit()}, N=[-1.0])
    with pytest.raises(ConfigError, match="prob"):
        build_report({"p": power_fit()}, prob=1.5)


def test_numbers_in_report_match_the_summary():
    fit = power_fit()
    text = build_report({"p": fit})
    row = fit.summary().loc["alpha_N"]
    assert f"<td>{format(row['mean'], '.4g')}</td>" in text
    assert np.isfinite(row["mean"])
