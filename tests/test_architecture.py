"""The package's import direction, as `docs/DESIGN.md` draws it.

Every module's imports are read with `ast` (function-level and other lazy
imports count the same as top-level ones: a lazy import still makes the
importing code depend on the imported one), mapped to the components of
the layer table in `docs/DESIGN.md` ("## Layers of the package"), and
checked: each import goes to a strictly lower level, and the component
graph has no cycle, except for the edges of `ALLOWED_EDGES` below.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "keras_neuronprune"
DESIGN = ROOT / "docs" / "DESIGN.md"

# Imports that go against the layer table, each with the reason it is
# still there. Keep this list short (aim: empty) and remove an entry as
# soon as its import is gone (`test_allowed_edges_are_still_needed`).
ALLOWED_EDGES = {
    # The MultiHeadAttention handler thins heads with
    # `rewrite/attention_rewrite.py`. Goes when that rewrite moves into the
    # handler (or rewrite registers it on the handler).
    ("graph", "rewrite"): "graph/attention_handlers.py -> rewrite",
    # `schedules._tfmot` maps tfmot's `ConstantSparsity` name onto the
    # weight schedule, which itself extends `schedules`. Goes when the
    # tfmot names live in `sparsity.schedules`.
    ("schedules", "sparsity"): "schedules/_tfmot.py -> sparsity.schedules",
    # `export._common.load_model_file` imports the package root so every
    # registered class is known to `keras.saving.load_model`. Redundant:
    # importing `export` already runs the root `__init__`.
    ("export", "keras_neuronprune"): "export/_common.py -> root",
}


def module_name(path, package_dir):
    """Dotted module name of a file under `package_dir`'s parent."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_modules(package_dir):
    """Dict dotted name -> path of every module of the package."""
    return {
        module_name(path, package_dir): path
        for path in sorted(package_dir.rglob("*.py"))
    }


def imported_modules(source, name, is_package, known, package=PACKAGE):
    """The package modules that `source` (module `name`) imports.

    Every `import` / `from ... import` node counts, wherever it is (top
    level, in a function, under `if TYPE_CHECKING`). Relative imports are
    resolved; `from a.b import c` counts as `a.b.c` when that is a module.

    Args:
        source: the module's Python source.
        name: its dotted name.
        is_package: whether it is a package's `__init__`.
        known: the set of dotted names of the package's modules.
        package: the top-level package name (other imports are ignored).

    Returns:
        A set of dotted module names.
    """
    found = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                module = ".".join(
                    anchor + ([node.module] if node.module else [])
                )
            else:
                module = node.module or ""
            targets = []
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                targets.append(candidate if candidate in known else module)
        else:
            continue
        for target in targets:
            if target == package or target.startswith(package + "."):
                found.add(target)
    return found


def component_of(module, components, package=PACKAGE):
    """The component (longest matching prefix in `components`) of a module.

    Components are dotted names relative to the package ("graph",
    "utils.validation"); the package itself is "keras_neuronprune".
    """
    if module == package:
        return package
    relative = module[len(package) + 1 :]
    best = None
    for component in components:
        if relative == component or relative.startswith(component + "."):
            if best is None or len(component) > len(best):
                best = component
    return best


def component_edges(modules, components, package=PACKAGE):
    """Dict `(from, to)` -> sorted list of `"importer -> imported"` lines.

    Raises:
        AssertionError: for a module that no component covers.
    """
    known = set(modules)
    edges = {}
    for name, path in modules.items():
        src = component_of(name, components, package)
        assert src is not None, (
            f"module {name} belongs to no component of the layer table in "
            "docs/DESIGN.md; add it to a level there"
        )
        source = path.read_text()
        for target in imported_modules(
            source, name, path.name == "__init__.py", known, package
        ):
            dst = component_of(target, components, package)
            assert dst is not None, f"{name} imports {target}: no component"
            if dst != src:
                edges.setdefault((src, dst), set()).add(f"{name} -> {target}")
    return {edge: sorted(lines) for edge, lines in edges.items()}


def find_cycles(edges):
    """Strongly connected components of more than one node (Tarjan).

    Args:
        edges: iterable of `(from, to)` pairs.

    Returns:
        A sorted list of sorted lists of nodes, one per cycle.
    """
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            scc = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                scc.append(top)
                if top == node:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def direction_violations(edges, levels):
    """The edges that do not go to a strictly lower level.

    Args:
        edges: iterable of `(from, to)` component pairs.
        levels: dict component -> level (int, 0 is the bottom).

    Returns:
        A sorted list of the offending `(from, to)` pairs.
    """
    return sorted((a, b) for a, b in edges if levels[a] <= levels[b])


def read_layer_table(text):
    """Dict component -> level from the table of "## Layers of the package".

    Rows look like ``| 3 | `graph` | ... |``; the second cell lists the
    level's components in backquotes.
    """
    section = text.split("## Layers of the package", 1)
    assert len(section) == 2, "docs/DESIGN.md has no '## Layers of the package'"
    body = section[1].split("\n## ", 1)[0]
    levels = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        for component in re.findall(r"`([^`]+)`", cells[1]):
            assert component not in levels, f"{component} listed twice"
            levels[component] = int(cells[0])
    return levels


@pytest.fixture(scope="module")
def layer_table():
    return read_layer_table(DESIGN.read_text())


@pytest.fixture(scope="module")
def edges(layer_table):
    modules = package_modules(ROOT / PACKAGE)
    return component_edges(modules, set(layer_table) - {PACKAGE})


def _format(edges, pairs):
    return "\n".join(
        f"{a} -> {b}: " + "; ".join(edges.get((a, b), [])) for a, b in pairs
    )


def test_layer_table_covers_every_subpackage(layer_table):
    package_dir = ROOT / PACKAGE
    names = {
        p.name
        for p in package_dir.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    }
    names = {n.removesuffix(".py") for n in names} - {"__init__"}
    covered = {c.split(".")[0] for c in layer_table}
    assert PACKAGE in layer_table
    assert names <= covered, f"not in the layer table: {names - covered}"


def test_imports_go_down_the_layer_table(edges, layer_table):
    bad = [
        e
        for e in direction_violations(edges, layer_table)
        if e not in ALLOWED_EDGES
    ]
    assert not bad, (
        "imports against docs/DESIGN.md's layer table (move the code down, "
        "or change the table with a reason):\n" + _format(edges, bad)
    )


def test_no_import_cycle_between_components(edges):
    kept = [e for e in edges if e not in ALLOWED_EDGES]
    cycles = find_cycles(kept)
    assert not cycles, f"import cycles between components: {cycles}"


def test_allowed_edges_are_still_needed(edges, layer_table):
    # The allow-list only shrinks: an entry whose import is gone, or that
    # the table now allows, must be deleted.
    needed = set(direction_violations(edges, layer_table))
    stale = sorted(set(ALLOWED_EDGES) - needed)
    assert not stale, f"remove from ALLOWED_EDGES: {stale}"


# The checker itself must be able to fail.


def test_find_cycles_detects_a_synthetic_cycle():
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "e")]
    assert find_cycles(edges) == [["a", "b", "c"]]
    assert find_cycles([("a", "b"), ("b", "c")]) == []


def test_direction_violations_flags_upward_and_sideways_imports():
    levels = {"low": 0, "mid": 1, "peer": 1, "top": 2}
    edges = [("top", "low"), ("low", "mid"), ("mid", "peer"), ("top", "mid")]
    assert direction_violations(edges, levels) == [
        ("low", "mid"),
        ("mid", "peer"),
    ]


def test_imports_are_read_everywhere_in_a_module():
    source = (
        "import keras\n"
        "from keras_neuronprune.graph import _keras_graph\n"
        "from . import sibling\n"
        "from ..layers import GATE_SUFFIX\n"
        "def f():\n"
        "    import keras_neuronprune.rewrite.thin_model\n"
        "    from keras_neuronprune import criteria\n"
    )
    known = {
        "keras_neuronprune",
        "keras_neuronprune.graph",
        "keras_neuronprune.graph._keras_graph",
        "keras_neuronprune.pruning",
        "keras_neuronprune.pruning.sibling",
        "keras_neuronprune.layers",
        "keras_neuronprune.rewrite.thin_model",
        "keras_neuronprune.criteria",
    }
    found = imported_modules(
        source, "keras_neuronprune.pruning.mod", False, known
    )
    assert found == {
        "keras_neuronprune.graph._keras_graph",
        "keras_neuronprune.pruning.sibling",
        "keras_neuronprune.layers",
        "keras_neuronprune.rewrite.thin_model",
        "keras_neuronprune.criteria",
    }


def test_components_are_longest_prefixes():
    components = {"utils", "utils.validation", "graph"}
    assert component_of("keras_neuronprune.utils.validation", components) == (
        "utils.validation"
    )
    assert component_of("keras_neuronprune.utils.features", components) == (
        "utils"
    )
    assert component_of("keras_neuronprune.graph.handlers", components) == (
        "graph"
    )
    assert component_of("keras_neuronprune", components) == "keras_neuronprune"
    assert component_of("keras_neuronprune.cost", components) is None


def test_read_layer_table_parses_levels():
    text = (
        "## Layers of the package\n"
        "| Level | Components | Stands on |\n|---|---|---|\n"
        "| 1 | `graph`, `utils.features` | `layers` |\n"
        "| 0 | `layers` | nothing |\n"
        "## Next\n| 5 | `ignored` | |\n"
    )
    assert read_layer_table(text) == {
        "graph": 1,
        "utils.features": 1,
        "layers": 0,
    }


# Private Keras access lives in one module (issue 10): if a Keras release
# renames its internals, only `graph/_keras_graph.py` changes.

PRIVATE_KERAS_MODULE = "keras_neuronprune.graph._keras_graph"
_PRIVATE_KERAS = re.compile(
    r"\bkeras\s*\.\s*src\b|\bfrom\s+keras\s+import\s+(\(\s*)?([\w\s,]*,\s*)?src\b"
)


def private_keras_lines(source):
    """Line numbers of `source` that name `keras.src` (code or strings)."""
    return [
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if _PRIVATE_KERAS.search(line)
    ]


def test_private_keras_is_touched_only_by_keras_graph():
    modules = package_modules(ROOT / PACKAGE)
    assert PRIVATE_KERAS_MODULE in modules
    found = {
        name: lines
        for name, path in modules.items()
        if name != PRIVATE_KERAS_MODULE
        and (lines := private_keras_lines(path.read_text()))
    }
    assert not found, (
        "private Keras (`keras.src`) outside graph/_keras_graph.py; add an "
        f"accessor there and import it (module: line numbers): {found}"
    )


def test_private_keras_lines_finds_every_spelling():
    source = (
        "import keras\n"
        "from keras.src.ops import numpy\n"
        "import keras.src.layers as kl\n"
        'NAME = "keras.src.layers.Dense"\n'
        "from keras import src\n"
        "from keras import ops, src\n"
        "from keras import ops\n"
        'NAME = "keras_hub.src.models.Gemma"\n'
    )
    assert private_keras_lines(source) == [2, 3, 4, 5, 6]
