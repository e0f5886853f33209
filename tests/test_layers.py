"""The import structure of llmrec/: no cycles, nothing importing up the layers, and the library
never importing the experiments package. Every import counts, lazy ones inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "llmrec"

# bottom to top; a module may import its own layer and the ones below. Top-level helper modules
# (errors, config, atomic, dtype, progress) form the base; serve sits above the stages it serves.
LAYERS = [
    {"__init__", "errors", "config", "atomic", "dtype", "progress"},
    {"data"},
    {"llm"},
    {"backbones"},
    {"eval"},
    {"train"},
    {"tokenizer"},
    {"alignment", "interests"},
    {"serve"},
    {"pipeline"},
    {"experiments"},
    {"commands", "cli", "__main__", "docgen", "legacy_convert"},
]
LIBRARY = {name for layer in LAYERS[:-2] for name in layer}


def unit(module: str) -> str:
    """The layer unit of a dotted module: its first component under llmrec."""
    return module.split(".")[1] if module.count(".") else "__init__"


def layer(module: str) -> int:
    u = unit(module)
    return next(i for i, names in enumerate(LAYERS) if u in names)


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``name`` imports (resolved to the longest known module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("llmrec.") and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_has_a_layer():
    assert all(layer(m) >= 0 for m in graph())


def test_no_import_runs_up_the_layers():
    up = [f"{a} -> {b}" for a, deps in graph().items() for b in deps if layer(b) > layer(a)]
    assert not up, "imports running up the layers:\n" + "\n".join(sorted(up))


def test_library_never_imports_experiments():
    bad = [f"{a} -> {b}" for a, deps in graph().items() if unit(a) in LIBRARY
           for b in deps if unit(b) == "experiments"]
    assert not bad, bad


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_config_imports_nothing_above_errors():
    assert graph()["llmrec.config"] <= {"llmrec.errors"}
