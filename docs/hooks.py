"""mkdocs hooks: pages generated from the code at build time, so they cannot drift.

``<!-- bayescale:cli -->`` becomes the help of ``bayescale`` and of every subcommand, taken from
:func:`bayescale.cli.build_parser`, and ``<!-- bayescale:cli NAME -->`` the help of one
subcommand; ``<!-- bayescale:benchmarks -->`` becomes the Markdown tables in
``benchmarks/results/*.md`` and ``<!-- bayescale:backtests -->`` a table of the backtest
results in ``benchmarks/results/backtest_*.json`` (or a note that none were generated yet).
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
ONE_COMMAND = re.compile(r"<!-- bayescale:cli ([a-z-]+) -->")
RESULTS = ROOT / "benchmarks" / "results"
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
    from bayescale.cli import build_parser

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
    files = sorted(RESULTS.glob("*.md"))
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
    """Return one Markdown table row per split of every ``backtest_*.json`` result file."""
    files = sorted(RESULTS.glob("backtest_*.json"))
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


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fill the generated sections of a page."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    markdown = ONE_COMMAND.sub(lambda m: cli_reference(m.group(1)), markdown)
    if BENCHMARKS_MARKER in markdown:
        markdown = markdown.replace(BENCHMARKS_MARKER, benchmark_tables())
    if BACKTESTS_MARKER in markdown:
        markdown = markdown.replace(BACKTESTS_MARKER, backtest_table())
    return markdown
