"""mkdocs hooks: pages generated from the code at build time, so they cannot drift.

``<!-- bayescale:cli -->`` becomes the help of ``bayescale`` and of every subcommand, taken from
:func:`bayescale.cli.app.build_parser`, and ``<!-- bayescale:cli NAME -->`` the help of one
subcommand; ``<!-- bayescale:benchmarks -->`` becomes the Markdown tables in
``benchmarks/results/*.md`` and ``<!-- bayescale:backtests -->`` a table of the backtest
results in ``benchmarks/results/backtest_olmo*.json`` (or a note that none were generated yet).
``<!-- bayescale:backtests-real TABLE totals|splits -->`` becomes the method comparison of
``benchmarks/results/backtest_real_TABLE.json``: pooled totals, or one row per split and method.
``<!-- bayescale:sbc -->`` becomes ``benchmarks/results/sbc_full.md``, the table of the full SBC
configuration written by ``benchmarks/sbc_full.py`` (not repeated on the benchmarks page).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI_MARKER = "<!-- bayescale:cli -->"
BENCHMARKS_MARKER = "<!-- bayescale:benchmarks -->"
BACKTESTS_MARKER = "<!-- bayescale:backtests -->"
SBC_MARKER = "<!-- bayescale:sbc -->"
ONE_COMMAND = re.compile(r"<!-- bayescale:cli ([a-z-]+) -->")
REAL_BACKTESTS = re.compile(r"<!-- bayescale:backtests-real ([a-z_]+) (totals|splits) -->")
RESULTS = ROOT / "benchmarks" / "results"
SBC_TABLE = RESULTS / "sbc_full.md"
#: Help is wrapped at a fixed width so the page does not depend on the terminal of the build.
HELP_WIDTH = "100"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Return the subcommand parsers of ``parser`` by name, sorted."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return dict(sorted(found.items()))


def _help(parser: argparse.ArgumentParser) -> list[str]:
    """Return the help of ``parser`` as a fenced block, wrapped at :data:`HELP_WIDTH`."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        text = parser.format_help().rstrip()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved
    return ["```text", text, "```", ""]


def cli_reference(command: str | None = None) -> str:
    """Return Markdown with the ``--help`` of ``bayescale`` and of each subcommand.

    With ``command``, only that subcommand's help (or a note if this version lacks it).
    """
    from bayescale.cli.app import build_parser

    parser = build_parser()
    commands = subcommands(parser)
    if command is not None:
        if command not in commands:
            return f"!!! note\n    This version of bayescale has no `{command}` command yet.\n"
        return "\n".join(_help(commands[command]))
    parts = ["## bayescale", "", *_help(parser)]
    for name, sub in commands.items():
        parts += [f"## bayescale {name}", "", *_help(sub)]
    return "\n".join(parts)


def benchmark_tables() -> str:
    """Return the Markdown result files of ``benchmarks/results``, one section per file."""
    files = [f for f in sorted(RESULTS.glob("*.md")) if f != SBC_TABLE]
    if not files:
        return (
            "!!! note\n    No benchmark tables have been generated yet: run "
            "`python benchmarks/run_all.py`, which writes `benchmarks/results/*.md`.\n"
        )
    parts = []
    for f in files:
        text = f.read_text(encoding="utf-8").strip()
        # Demote the file's headings under this page's own title.
        lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
        parts += [f"## {f.stem}", "", *lines, ""]
    return "\n".join(parts)


def backtest_table() -> str:
    """Return one Markdown table row per split of every ``backtest_olmo*.json`` result file."""
    files = sorted(RESULTS.glob("backtest_olmo*.json"))
    rows = []
    for f in files:
        result = json.loads(f.read_text(encoding="utf-8"))
        for split in result.get("splits", []):
            n_out = split["n_held_out"]
            rows.append(
                f"| {split['eval']} | {split['law']} | {split['by']} | {n_out} of "
                f"{split['n_fit'] + n_out} | {split['discrepancy']} | {split['coverage']:.2f} | "
                f"{split['mean_width']:.3f} | {split['mean_interval_score']:.3f} | "
                f"{split['max_extrapolation_decades']:.2f} | {split['divergences']} |"
            )
    if not rows:
        return (
            "!!! note\n    No backtest results have been generated yet: see "
            "`benchmarks/backtest_olmo.py`.\n"
        )
    header = [
        "| eval set | law | held out by | held out | discrepancy | coverage | mean width "
        "| interval score | max decades beyond | divergences |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join([*header, *rows, ""])


def _cell(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def real_backtest_table(table: str, level: str) -> str:
    """Return the method comparison of ``backtest_real_<table>.json`` as a Markdown table.

    ``level="totals"``: the file's pooled totals (held-out runs pooled over splits);
    ``"splits"``: one row per split and method, with the status of methods that did not run.
    """
    path = RESULTS / f"backtest_real_{table}.json"
    if not path.exists():
        return f"!!! note\n    No results for `{table}` yet: run `benchmarks/backtest_real.py`.\n"
    doc = json.loads(path.read_text(encoding="utf-8"))
    rows = doc["totals"] if level == "totals" else doc["splits"]
    keys = [k for k in ("eval", "law", "split", "curve") if any(k in r for r in rows)]
    if level == "totals":
        keys = [k for k in keys if k not in ("split", "curve")]
    pooled_by = {"rnsl_lang": "domain", "rnsl_vision": "model"}
    names = {"eval": pooled_by.get(table, "eval set"), "curve": "curve"}
    header = [names.get(k, k) for k in keys] + [
        "method",
        "held out",
        "coverage",
        "mean width",
        "interval score",
        "log score",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        label = [str(r.get(k, "")) for k in keys] + [f"`{r['method']}`"]
        if r.get("status", "ok") != "ok":
            lines.append("| " + " | ".join(label) + f" | {r['status']} | | | | |")
            continue
        held = r["held_out"] if level == "totals" else r["n_held_out"]
        lines.append(
            "| "
            + " | ".join(
                [
                    *label,
                    str(held),
                    _cell(r["coverage"], 2),
                    _cell(r["mean_width"], 4),
                    _cell(r["mean_interval_score"], 4),
                    _cell(r["mean_log_score"], 2),
                ]
            )
            + " |"
        )
    return "\n".join([*lines, ""])


def sbc_table() -> str:
    """Return the full SBC configuration's Markdown table (or a note if it was not run)."""
    if not SBC_TABLE.is_file():
        return (
            "!!! note\n    The full SBC configuration has not been run yet: see "
            "`benchmarks/sbc_full.py`.\n"
        )
    return SBC_TABLE.read_text(encoding="utf-8").strip() + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fill the generated sections of a page."""
    if SBC_MARKER in markdown:
        markdown = markdown.replace(SBC_MARKER, sbc_table())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    markdown = ONE_COMMAND.sub(lambda m: cli_reference(m.group(1)), markdown)
    if BENCHMARKS_MARKER in markdown:
        markdown = markdown.replace(BENCHMARKS_MARKER, benchmark_tables())
    if BACKTESTS_MARKER in markdown:
        markdown = markdown.replace(BACKTESTS_MARKER, backtest_table())
    markdown = REAL_BACKTESTS.sub(lambda m: real_backtest_table(m.group(1), m.group(2)), markdown)
    return markdown
