"""Record the command line's outputs on the bundled job, to check a refactor changes none of them.

Run ``python tests/golden/freeze.py`` to (re)write ``tests/golden/outputs.json``: for each
command of :data:`COMMANDS`, its exit code, standard output and the last line of standard
error. ``tests/test_golden.py`` reruns the same commands and compares them byte for byte.

Regenerate only when a change of behaviour is intended, and say so in the commit. The sampler
is deterministic for a fixed seed on one kind of CPU; the file records the machine it was made
on (:func:`machine`), and the test compares outputs byte for byte on that kind of machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUTS = HERE / "outputs.json"

#: The bundled job of ``make run`` and the questions asked of its fit, then the exact path.
#: ``{fit}`` and ``{exact}`` are replaced by fit files in a temporary directory.
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("fit", "kaplan_ladder", "--law", "kaplan_nd", "--seed", "0", "--no-progress", "-o", "{fit}"),
    ("summary", "{fit}"),
    ("summary", "{fit}", "--json", "--prob", "0.9"),
    ("predict", "{fit}", "--N", "1e10", "--D", "2e11", "--target-loss", "2.4", "--json"),
    ("overfit", "{fit}", "--N", "1e10", "--json"),
    ("optimal", "{fit}", "--C", "1e21", "--C", "1e22", "--json"),
    ("fit", "chinchilla_ladder", "--law", "power_n", "--sampler", "exact", "-o", "{exact}"),
    ("summary", "{exact}", "--json"),
    ("predict", "{exact}", "--N", "1e11", "--json"),
    ("laws",),
    ("datasets", "list"),
)


def machine() -> dict[str, str]:
    """What decides whether sampler outputs can be byte-identical: CPU and library versions."""
    from importlib.metadata import version

    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                # The vector extensions LLVM compiles the model for.
                flags = " ".join(sorted(f for f in line.split()[2:] if f.startswith("avx")))
                break
    return {
        "machine": platform.machine(),
        "cpu_flags": flags,
        **{name: version(name) for name in ("nutpie", "numba", "numpy", "pymc", "pytensor")},
    }


def run_all(directory: Path) -> list[dict[str, object]]:
    """Run :data:`COMMANDS` in-process; return code, stdout and the last stderr line of each."""
    from bayescale.cli.app import main

    files = {"fit": str(directory / "fit.nc"), "exact": str(directory / "exact.nc")}
    results = []
    for command in COMMANDS:
        argv = [part.format(**files) for part in command]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        last = err.getvalue().strip().splitlines()[-1:] or [""]
        results.append(
            {
                "command": list(command),
                "code": code,
                "stdout": out.getvalue().replace(str(directory), "<tmp>"),
                "stderr_last": last[0].replace(str(directory), "<tmp>"),
            }
        )
    return results


def main() -> int:
    """Write :data:`OUTPUTS`."""
    with tempfile.TemporaryDirectory() as tmp:
        results = run_all(Path(tmp))
    doc = {"machine": machine(), "results": results}
    OUTPUTS.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUTS} ({len(results)} commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
