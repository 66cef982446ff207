"""The package's shape: folders in the order of the data flow, arrows pointing down it only.

Read from the source with :mod:`ast`, so every import counts, function-local ones included
(imports under ``if TYPE_CHECKING:`` do not: they never run). The rules:

* a module imports only from its own stage or an earlier one of :data:`STAGES`;
* no import cycle between modules;
* no private name (``_x``) is imported from, or looked up on, another module of the package;
* no module is longer than :data:`MAX_LINES` lines (a longer one holds two concepts);
* an import inside a function defers start-up time: it loads a module of a :data:`HEAVY`
  library, or a module of the package that does, which importing the module itself does not
  load already (its top-level imports, followed through the package's modules and parent
  packages; ``from m import x`` loads ``m.x`` when that is a module, and a name a package
  exports lazily loads the module defining it). Any other import goes at the top: a stdlib or
  light one gains nothing inside a function, and one loaded already is redundant;
* a module that keeps function-local imports says why, once: exactly one of its comments (or
  its docstring) contains :data:`LAZY_MARKER`, ``imported where used``, e.g. ``# pymc is
  imported where used (~0.7 s): only the pymc sampler needs it``. A module without
  function-local imports has no such comment.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import io
import tokenize
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

#: Third-party libraries worth importing inside a function rather than at the top. What one
#: costs to import is paid by every process importing the module, and ``import bayescale``
#: loads none of them. Cumulative ``python -X importtime -c "import X"``, median of three on
#: the development machine (2 cores, shared), in seconds: numpy 0.09, scipy 0.12
#: (``scipy.stats`` 0.7 more), pandas 0.34, xarray 0.39 (pandas included), pytensor 0.24,
#: pymc 0.64 (pytensor included), arviz 1.56, arviz_base 0.63, arviz_stats 1.13, arviz_plots
#: 1.53, matplotlib 0.20 (``matplotlib.pyplot`` 0.44), nutpie 1.72, numba 0.28, dask 0.12,
#: distributed 0.36, h5py 0.14, h5netcdf 0.14, pyarrow 0.14. threadpoolctl (0.02) and cycler
#: (0.01) are cheap but used only beside scipy and matplotlib, so they wait with them.
HEAVY = frozenset(
    {
        "numpy",
        "scipy",
        "pandas",
        "xarray",
        "pytensor",
        "pymc",
        "arviz",
        "arviz_base",
        "arviz_stats",
        "arviz_plots",
        "matplotlib",
        "nutpie",
        "numba",
        "dask",
        "distributed",
        "h5py",
        "h5netcdf",
        "pyarrow",
        "threadpoolctl",
        "cycler",
    }
)
#: The phrase of the one comment (or docstring) of a module saying why it imports in functions.
LAZY_MARKER = "imported where used"


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted name of every module of the package, and its file (found once per run)."""
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


# --------------------------------------------------------------------------------------------
# Function-local imports
# --------------------------------------------------------------------------------------------
def _is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module (not an attribute of one), found without importing."""
    parts = dotted.split(".")
    path = None
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            return False
        path = spec.submodule_search_locations
        if path is None and i < len(parts) - 1:
            return False
    return True


def _loaded(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    """Dotted modules an import statement loads (``from m import x``: ``m.x`` if a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
    if base.split(".")[0] != "bayescale":
        return sorted(
            {f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names}
        )
    known = modules()
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:  # a module; a package's lazy exports load theirs when looked up
            out |= {sub, *_lazy_exports(sub).values()}
        else:
            out.add(_lazy_exports(base).get(alias.name, base))
    return sorted(out)


@functools.cache
def _lazy_exports(package: str) -> dict[str, str]:
    """A package's ``_EXPORTS``: name to the module it is loaded from on first look-up."""
    path = modules().get(package)
    if path is None or path.name != "__init__.py":
        return {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_EXPORTS":
            return dict(ast.literal_eval(node.value))
    return {}


def _top_level_imports(module: str, path: Path) -> set[str]:
    """Modules loaded by importing ``module``'s file itself (not by calling its functions)."""
    out: set[str] = set()

    def visit(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if _type_checking(node):
                visit(node.orelse)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                out.update(_loaded(node, module, path))
            elif isinstance(node, ast.ClassDef | ast.If | ast.With | ast.For | ast.While):
                visit([*node.body, *getattr(node, "orelse", [])])
            elif isinstance(node, ast.Try):
                visit([*node.body, *node.orelse, *node.finalbody])
                visit([s for h in node.handlers for s in h.body])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return out


def _heavy_closure(module: str, cache: dict[str, set[str]]) -> set[str]:
    """Modules of :data:`HEAVY` libraries that ``import module`` loads.

    Followed through the package's modules imported at the top and the parent packages'
    ``__init__`` (which run first).
    """
    if module in cache:
        return cache[module]
    cache[module] = set()  # a cycle adds nothing new
    known = modules()
    parts = module.split(".")
    found = set().union(*(_heavy_closure(".".join(parts[:i]), cache) for i in range(1, len(parts))))
    for target in _top_level_imports(module, known[module]):
        if target.split(".")[0] in HEAVY:
            found.add(target)
        elif target in known:
            found |= _heavy_closure(target, cache)
    cache[module] = found
    return found


def _is_loaded(target: str, loaded: set[str]) -> bool:
    """Whether importing ``target`` is free once ``loaded`` are imported (a parent is, too)."""
    return any(m == target or m.startswith(target + ".") for m in loaded)


def _local_imports(
    module: str, path: Path
) -> Iterator[tuple[ast.Import | ast.ImportFrom, list[str]]]:
    """Each import inside a function (``if TYPE_CHECKING:`` aside), with the modules it loads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    seen = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in _walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and node not in seen:
                    seen.add(node)
                    yield node, _loaded(node, module, path)


def _why_not_local(target: str, here: set[str], cache: dict[str, set[str]]) -> str | None:
    """Why importing ``target`` in a function of a module loading ``here`` gains nothing."""
    top = target.split(".")[0]
    if top == "bayescale":
        known = modules()
        while target not in known:
            target = target.rpartition(".")[0]
        extra = [m for m in _heavy_closure(target, cache) if not _is_loaded(m, here)]
        return None if extra else "loads no heavy library the module does not load already"
    if top not in HEAVY:
        return "not a heavy library (see HEAVY): import it at the top"
    if _is_loaded(target, here):
        return "loaded already by the module's top-level imports: use those"
    return None


def test_function_local_imports_defer_a_heavy_library():
    cache: dict[str, set[str]] = {}
    wrong = []
    for module, path in modules().items():
        here = _heavy_closure(module, cache)
        for node, targets in _local_imports(module, path):
            reasons = [_why_not_local(t, here, cache) for t in targets]
            if all(reasons):
                # A lazily exporting package stands for its exports: name the package only.
                named = [t for t in targets if not any(t.startswith(o + ".") for o in targets)]
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports "
                    f"{', '.join(named)}: {reasons[0]}"
                )
    assert not wrong, f"{len(wrong)} pointless function-local imports:\n" + "\n".join(wrong)


def _marker_lines(path: Path) -> list[int]:
    """Lines of the comments, and of the module docstring, containing :data:`LAZY_MARKER`."""
    text = path.read_text(encoding="utf-8")
    lines = [
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.COMMENT and LAZY_MARKER in tok.string
    ]
    tree = ast.parse(text)
    doc = ast.get_docstring(tree, clean=False)
    if doc and LAZY_MARKER in " ".join(doc.split()):
        lines.append(tree.body[0].lineno)
    return lines


def test_function_local_imports_say_why_once():
    wrong = []
    for module, path in modules().items():
        local = sorted(node.lineno for node, _ in _local_imports(module, path))
        marks = _marker_lines(path)
        where = path.relative_to(PACKAGE.parent)
        if local and len(marks) != 1:
            wrong.append(
                f"{where}: imports in functions (line {local[0]}) need one comment saying "
                f"why, with {LAZY_MARKER!r}; found {len(marks)}"
            )
        elif not local and marks:
            wrong.append(f"{where}:{marks[0]} says {LAZY_MARKER!r} but imports nothing locally")
    assert not wrong, "\n".join(wrong)
