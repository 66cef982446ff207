"""The command line's outputs on the bundled job are those recorded in ``tests/golden``.

A guard for refactors: moving code must not change a byte of what users see. The outputs were
recorded by ``tests/golden/freeze.py`` (see there for when to regenerate them). NUTS draws are
reproducible for a seed only where the compiled model is the same machine code, so on another
kind of CPU (or other nutpie/numba/NumPy versions) the sampled outputs are compared on their
shape and the exact-sampler ones, which use NumPy's generator alone, still byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import freeze

RECORDED = json.loads(freeze.OUTPUTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> list[dict[str, object]]:
    return freeze.run_all(tmp_path_factory.mktemp("golden"))


def test_every_recorded_command_is_run():
    assert [r["command"] for r in RECORDED["results"]] == [list(c) for c in freeze.COMMANDS]


@pytest.mark.parametrize(
    "k", range(len(freeze.COMMANDS)), ids=[" ".join(c) for c in freeze.COMMANDS]
)
def test_output_matches_the_record(k, outputs):
    got, want = outputs[k], RECORDED["results"][k]
    sampled = "{fit}" in freeze.COMMANDS[k]
    if sampled and freeze.machine() != RECORDED["machine"]:
        # Another CPU or library build: same command, same exit code, same JSON keys.
        assert got["code"] == want["code"]
        if "--json" in freeze.COMMANDS[k]:
            assert _keys(json.loads(got["stdout"])) == _keys(json.loads(want["stdout"]))
        return
    assert got == want


def _keys(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_keys(v) for v in obj[:1]]
    return type(obj).__name__
