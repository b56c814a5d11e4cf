"""The package's structure, as DESIGN.md states it: layers that import only downwards, and no
import cycle. Imports are read from the source (module level and inside functions alike),
so a lazy import inside a function counts as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import stemseg

PACKAGE = Path(stemseg.__file__).parent

#: Layers from the bottom up (DESIGN.md, "Dependency rules"). A module imports modules of
#: its own layer or of layers below it.
LAYERS: list[set[str]] = [
    {"errors", "_cache", "_params", "_progress", "_blocks", "_hs", "outputs", "release",
     "data"},
    {"xray"},                                                   # physics
    {"_types", "simulate", "io", "_isolated_read"},             # result types, data in
    {"preprocess", "reduce", "cluster", "metrics", "measure"},  # stages: arrays in, out
    {"assemble", "streaming", "workflows", "quant", "multimodal"},  # flows
    {"validate"},                                               # count splitting
    {"analysis", "plots", "widgets", "cli", "__init__"},        # the face
]

#: The one stated upward import: Segmentation.plot (a convenience of the result type)
#: imports the plotting module when it is called.
ALLOWED_UPWARD = {("_types", "plots")}


def _imports(path: Path) -> set[str]:
    """Sibling modules (and subpackages) of stemseg that a module imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(a.name for a in node.names)
            elif node.level == 0 and node.module and node.module.split(".")[0] == "stemseg":
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names
                       if a.name.startswith("stemseg."))
    return out


def _graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    return {p.stem: {m for m in _imports(p) if m in modules and m != p.stem}
            for p in PACKAGE.glob("*.py")}


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    raise AssertionError(
        f"stemseg.{module} is in no layer of tests/test_architecture.py: add it to the "
        "layer it belongs to (and to DESIGN.md's dependency rules).")


def test_every_module_has_a_layer():
    for module in _graph():
        _layer(module)


def test_imports_go_down_only():
    upward = [(m, d) for m, deps in _graph().items() for d in deps
              if _layer(d) > _layer(m) and (m, d) not in ALLOWED_UPWARD]
    assert not upward, (
        "modules importing a module of a higher layer (module, imported): "
        f"{sorted(upward)}; see DESIGN.md's dependency rules")


def test_no_import_cycle():
    graph = _graph()
    # Tarjan's strongly connected components: any component of 2+ modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_can_fail():
    """The reader finds imports inside functions and relative imports of a name, and the
    layer rule flags an upward import: the checks above are not vacuous."""
    graph = _graph()
    assert "plots" in graph["_types"]             # imported inside Segmentation.plot
    assert {"streaming", "assemble"} <= graph["workflows"]
    assert _layer("cli") > _layer("workflows") > _layer("cluster") > _layer("errors")
    assert "workflows" not in graph["streaming"] and "workflows" not in graph["quant"]
