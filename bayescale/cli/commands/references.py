"""``bayescale references``: the registry of published fits (usable as priors and overlays)."""

from __future__ import annotations

import argparse

from bayescale.cli.app import fmt, print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``references`` subcommand."""
    p = sub.add_parser("references", help="list published fits (Kaplan, Chinchilla, ...)")
    p.add_argument("name", nargs="?", help="show one reference fit in full")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bayescale references``."""
    # the library is imported where used: `bayescale --help` imports every command module
    # (see benchmarks/README.md, start-up time)
    from bayescale.laws.published import get_reference, list_references

    names = [args.name] if args.name else list_references()
    docs = [get_reference(n).to_dict() for n in names]
    if args.json:
        print_json(docs[0] if args.name else docs)
        return 0
    for doc in docs:
        params = ", ".join(f"{k} = {fmt(v)}" for k, v in doc["params"].items())
        print(f"{doc['name']:<26}{doc['law']:<12}{params}")
        if args.name:
            print(f"\nformula: {doc['formula']}\nsource: {doc['source']}")
            print(f"conventions: {doc['conventions']}")
            for k, v in doc["derived"].items():
                print(f"derived {k} = {fmt(v)}")
            for k, v in doc["se"].items():
                print(f"standard error of {k}: {fmt(v)}")
            for k, v in doc["extra"].items():
                print(f"{k} = {fmt(v)}")
    return 0
