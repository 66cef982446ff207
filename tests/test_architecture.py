"""The package's shape: folders in the order of the data flow, arrows pointing down it only.

Read from the source with :mod:`ast`, so every import counts, function-local ones included
(imports under ``if TYPE_CHECKING:`` do not: they never run). The rules:

* a module imports only from its own stage or an earlier one of :data:`STAGES`;
* no import cycle between modules;
* no private name (``_x``) is imported from, or looked up on, another module of the package;
* no module is longer than :data:`MAX_LINES` lines (a longer one holds two concepts).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"

#: Stages of the flow, earliest first: runs -> law -> model -> fit -> questions -> output.
STAGES = (
    "core",
    "runs",
    "laws",
    "model",
    "fitting",
    "questions",
    "calibration",
    "plots",
    "report",
    "cli",
)
MAX_LINES = 800


def modules() -> dict[str, Path]:
    """Dotted name of every module of the package, and its file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def stage(module: str) -> int | None:
    """Position of ``module`` in :data:`STAGES` (None for the package's own ``__init__``)."""
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except what ``if TYPE_CHECKING:`` guards."""
    for child in ast.iter_child_nodes(node):
        if _type_checking(child):
            yield from (n for stmt in child.orelse for n in [stmt, *_walk(stmt)])
            continue
        yield child
        yield from _walk(child)


def imports(module: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import of the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if not base.startswith("bayescale"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append(
                    (sub, None, node.lineno) if sub in known else (base, alias.name, node.lineno)
                )
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _edges() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in imports(m, p) if t != m} for m, p in modules().items()}


def test_every_subpackage_is_a_stage():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(STAGES), packages - set(STAGES)


def test_imports_point_down_the_flow_only():
    wrong = []
    for module, path in modules().items():
        here = stage(module)
        for target, _, line in imports(module, path):
            there = stage(target)
            if here is not None and there is not None and there > here:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} -> {target}")
    assert not wrong, "imports from a later stage:\n" + "\n".join(wrong)


def test_no_import_cycles():
    edges = _edges()
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            # A package's __init__ and its own modules are one unit here.
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_leaves_its_module():
    known = modules()
    wrong = []
    for module, path in known.items():
        for target, name, line in imports(module, path):
            if name is not None and _private(name) and target != module:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {target}.{name}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {
            a.asname or a.name: f"{n.module}.{a.name}"
            for n in _walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("bayescale")
            for a in n.names
            if f"{n.module}.{a.name}" in known
        }
        for node in _walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} "
                    f"{aliases[node.value.id]}.{node.attr}"
                )
    assert not wrong, "private names used outside their module:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(modules()))
def test_module_is_not_too_long(module):
    lines = modules()[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module}: {lines} lines"
