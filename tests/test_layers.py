"""The package's layering, read from the source: no import cycles (imports inside functions count), the
rules the README's map states, and no private names borrowed across packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOPS = ("searcher", "trainables", "spaces")


def _modules() -> dict[str, Path]:
    out = {}
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "hf_templates" in path.parts:  # written into ticket folders, never imported
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import statement, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name.removeprefix("tickettune."), []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = (node.module or "").removeprefix("tickettune.")
            out.append((target, [a.name for a in node.names]))
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for target, names in _imports(name, path):
            for t in [target] + [f"{target}.{n}" for n in names]:
                if t in MODULES and t != name:
                    graph[name].add(t)
    return graph


def test_no_import_cycles():
    graph, state, cycles = _edges(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def _imports_under(prefix: str) -> set[tuple[str, str]]:
    graph = _edges()
    return {(m, t) for m, ts in graph.items() if m == prefix or m.startswith(prefix + ".") for t in ts}


@pytest.mark.parametrize(
    "low, high",
    [
        ("trainables.model", "trainables.ticket"),  # a model is built without knowing the ticket format
        ("trainables.model", "trainables.earlybert"),
        ("trainables.model", "trainables.training"),
        ("trainables.training", "trainables.earlybert"),
        ("trainables.tasks", "trainables.earlybert"),
        ("trainables.ticket", "trainables.earlybert"),
        ("trainables", "searcher"),  # a trial knows nothing of Ray Tune
        ("trainables", "spaces"),
        ("spaces", "searcher"),
        ("spaces", "trainables.flow"),  # checking a YAML file does not load the training stack
    ],
)
def test_layers_import_downward_only(low, high):
    bad = sorted((m, t) for m, t in _imports_under(low) if t == high or t.startswith(high + "."))
    assert not bad, f"{low} must not import {high}: {bad}"


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def test_no_private_names_across_packages():
    bad = []
    for name, path in MODULES.items():
        for target, names in _imports(name, path):
            if target in MODULES and _package(target) != _package(name):
                bad += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, bad
