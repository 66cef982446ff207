"""The package's public surface: every advertised name resolves, and importing stays light."""

import subprocess
import sys

import pytest

import bayescale


@pytest.mark.parametrize("name", bayescale.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(bayescale, name) is not None


def test_import_does_not_load_heavy_dependencies():
    code = (
        "import sys, bayescale; "
        "print(','.join(m for m in ('pymc', 'arviz', 'pytensor', 'xarray', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
