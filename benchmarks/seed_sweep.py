"""Pass rate of every statistical test over many seeds, each run in a random order.

The tests marked ``statistical`` (recovery, SBC, coverage, sampler oracles; see
``tests/conftest.py``) take all their seeds from ``BAYESCALE_TEST_SEED``. This script runs them
once per value of it, in an order shuffled by pytest-randomly (a dev dependency, off in the
default suite), and counts how often each test passes. A test that fails under some seed is a
finding: its margin is too thin, or the model it checks is fragile there.

    .venv/bin/python benchmarks/seed_sweep.py                 # seeds 0-19, 2 workers
    .venv/bin/python benchmarks/seed_sweep.py --seeds 5 --first 20 --resume
    .venv/bin/python benchmarks/seed_sweep.py -k test_curves --seeds 3

Results go to ``benchmarks/results/seed_sweep.json`` (every outcome, per seed) and
``seed_sweep.md`` (a table, lowest pass rate first), rewritten after every seed, so a long
sweep that is stopped keeps what it measured; ``--resume`` skips the seeds already there.
After fixing a test, ``--resume --update -k EXPR`` reruns the selected tests on the seeds
already swept and replaces their outcomes (the other tests' are kept).
Exit status 1 when a test passed in fewer than ``--required`` of its seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: Offset of pytest-randomly's shuffling seed from the test seed: the order and the random
#: draws vary together from one sweep value to the next, but are not the same number.
ORDER_OFFSET = 7919


def run_seed(
    seed: int, *, workers: int, select: str | None, scratch: Path
) -> tuple[dict[str, dict[str, str]], float]:
    """Run the statistical tests with ``BAYESCALE_TEST_SEED=seed``; outcome of each test."""
    report = scratch / f"seed_{seed}.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "statistical",
        "-p",
        "randomly",
        f"--randomly-seed={seed + ORDER_OFFSET}",
        "-p",
        "no:cacheprovider",
        # A module that fails to import (work in progress elsewhere) is reported as an error
        # of its own instead of stopping the whole run.
        "--continue-on-collection-errors",
        "-q",
        f"--junitxml={report}",
    ]
    if workers > 0:
        cmd += ["-n", str(workers), "--dist", "loadfile"]
    if select:
        cmd += ["-k", select]
    env = os.environ | {"BAYESCALE_TEST_SEED": str(seed)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    (scratch / f"seed_{seed}.log").write_text(proc.stdout + proc.stderr)
    if not report.is_file():
        raise RuntimeError(f"pytest wrote no report for seed {seed}:\n{proc.stderr[-2000:]}")
    return _outcomes(report), elapsed


def _outcomes(report: Path) -> dict[str, dict[str, str]]:
    """``{test id: {"outcome": ..., "message": ...}}`` from a JUnit XML report."""
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        # Collection errors have no class name; their name is the module's dotted path.
        name = case.get("name")
        test_id = f"{module}.py::{name}" if module else f"{name} (collection)"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = ((child.get("message") or "").splitlines() or [""])[0][:300]
                break
        # An error in a fixture's teardown is reported as a second entry for a passed test.
        if out.get(test_id, {}).get("outcome", "passed") != "passed":
            continue
        out[test_id] = {"outcome": outcome, "message": message}
    return out


def summarise(per_seed: dict[str, dict[str, dict[str, str]]], required: float) -> dict[str, Any]:
    """Pass rate of each test over the seeds in which it ran (skips are not counted)."""
    tests: dict[str, dict[str, Any]] = {}
    for seed, outcomes in per_seed.items():
        for test_id, result in outcomes.items():
            row = tests.setdefault(test_id, {"ran": 0, "passed": 0, "skipped": 0, "failures": {}})
            if result["outcome"] == "skipped":
                row["skipped"] += 1
                continue
            row["ran"] += 1
            if result["outcome"] == "passed":
                row["passed"] += 1
            else:
                row["failures"][seed] = f"{result['outcome']}: {result['message']}"
    for row in tests.values():
        row["pass_rate"] = row["passed"] / row["ran"] if row["ran"] else None
        row["ok"] = row["pass_rate"] is None or row["pass_rate"] >= required
    return tests


def write(doc: dict[str, Any], out: Path) -> None:
    """The JSON document and its Markdown table (lowest pass rate first)."""
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    tests = doc["tests"]
    order = sorted(tests, key=lambda t: (tests[t]["pass_rate"] is None, tests[t]["pass_rate"], t))
    seeds = doc["seeds_done"]
    minutes = [round(doc["seconds"][str(s)] / 60, 1) for s in seeds]
    lines = [
        "# Seed sweep of the statistical tests",
        "",
        f"`benchmarks/seed_sweep.py`: tests marked `statistical`, `BAYESCALE_TEST_SEED` = "
        f"{', '.join(map(str, seeds)) or 'none yet'} ({len(seeds)} of {doc['seeds_planned']} "
        f"planned), each seed in a random order (pytest-randomly, seed + {ORDER_OFFSET}), "
        f"{doc['workers']} xdist workers{', -k ' + doc['select'] if doc['select'] else ''}.",
        f"Required pass rate: {doc['required']:.0%}. Minutes per seed: {minutes}. "
        f"Load average at the end: {doc['load_average']}.",
        "",
        "| test | passed / ran | pass rate | failures (seed: message) |",
        "|---|---|---|---|",
    ]
    for test_id in order:
        row = tests[test_id]
        rate = "skipped" if row["pass_rate"] is None else f"{row['pass_rate']:.0%}"
        flag = "" if row["ok"] else " **below required**"
        failures = "; ".join(f"{s}: {m}" for s, m in row["failures"].items()).replace("|", "/")
        counts = f"{row['passed']} / {row['ran']}"
        lines.append(f"| `{test_id}` | {counts} | {rate}{flag} | {failures} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seed values (20)")
    parser.add_argument("--first", type=int, default=0, help="first seed value (0)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (2; 0: none)")
    parser.add_argument("-k", dest="select", help="pytest -k expression to run fewer tests")
    parser.add_argument("--required", type=float, default=0.99, help="pass rate required (0.99)")
    parser.add_argument("--out", type=Path, default=RESULTS / "seed_sweep", help="results stem")
    parser.add_argument("--resume", action="store_true", help="keep and skip seeds already run")
    parser.add_argument(
        "--update", action="store_true", help="with --resume, -k: rerun those tests on done seeds"
    )
    args = parser.parse_args(argv)
    if args.update and not (args.resume and args.select):
        parser.error("--update needs --resume and -k (the tests to rerun)")

    try:
        import pytest_randomly  # noqa: F401
    except ImportError:
        parser.error("needs pytest-randomly: install the dev extra, pip install -e '.[dev]'")
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = out.parent / f"{out.name}_logs"
    scratch.mkdir(exist_ok=True)
    doc: dict[str, Any] = {"per_seed": {}, "seconds": {}}
    if args.resume and out.with_suffix(".json").is_file():
        doc = json.loads(out.with_suffix(".json").read_text())
    seeds = range(args.first, args.first + args.seeds)
    planned = sorted({*map(int, doc["per_seed"]), *seeds})
    for seed in seeds:
        done_before = str(seed) in doc["per_seed"]
        if done_before and not args.update:
            continue
        outcomes, elapsed = run_seed(
            seed, workers=args.workers, select=args.select, scratch=scratch
        )
        if done_before:  # an update: the other tests keep their outcomes and timing
            doc["per_seed"][str(seed)] |= outcomes
        else:
            doc["per_seed"][str(seed)] = outcomes
            doc["seconds"][str(seed)] = round(elapsed, 1)
        failed = [t for t, r in outcomes.items() if r["outcome"] in ("failed", "error")]
        print(f"seed {seed}: {len(outcomes)} tests, {len(failed)} failed, {elapsed / 60:.1f} min")
        for test_id in failed:
            print(f"    {test_id}: {outcomes[test_id]['message'][:150]}")
        done = sorted(map(int, doc["per_seed"]))
        doc.update(
            seeds_done=done,
            seeds_planned=max(len(planned), doc.get("seeds_planned", 0)),
            workers=args.workers,
            select=doc.get("select") if done_before else args.select,
            required=args.required,
            load_average=[round(x, 2) for x in os.getloadavg()],
            tests=summarise(doc["per_seed"], args.required),
        )
        write(doc, out)
    below = [t for t, row in doc.get("tests", {}).items() if not row["ok"]]
    for test_id in below:
        print(f"below {args.required:.0%}: {test_id} ({doc['tests'][test_id]['pass_rate']:.0%})")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
