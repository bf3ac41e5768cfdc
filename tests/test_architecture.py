"""Imports point down only (ARCHITECTURE.md): a lower floor never imports a higher one, not even
lazily inside a function, and no two modules import each other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "electra"
# bottom to top; a module may import its own floor and the floors below it
FLOORS = [
    ("electra.errors", "electra.config", "electra.config_io", "electra.config_algorithm",
     "electra.config_sections", "electra.files",
     "electra.resources"),
    ("electra.data",),
    ("electra.model",),
    ("electra.objective",),
    ("electra.hf",),
    ("electra.train",),
    ("electra.finetuning", "electra.plan", "electra.diagnose"),
    ("electra.api", "electra.experiment", "electra.experiment_report"),
    ("electra.cli", "electra.cli_checks", "electra.cli_options", "electra.summaries", "electra.__main__", "electra"),
]


def floor_of(module: str) -> int:
    best = None
    for i, names in enumerate(FLOORS):
        for name in names:
            if module == name or module.startswith(name + ".") and name != "electra":
                best = i
    if best is None and module == "electra":
        return len(FLOORS) - 1
    assert best is not None, f"{module} is on no floor; add it to FLOORS and ARCHITECTURE.md"
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):
    """Every node except the bodies of `if TYPE_CHECKING:` (annotations only, never imported)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from runtime_nodes(node)


def imports(path: Path) -> set[str]:
    found = set()
    for node in runtime_nodes(ast.parse(path.read_text())):  # every import, also inside functions
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("electra"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (ROOT.parent / node.module.replace(".", "/") / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("electra"))
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_only(module):
    mine = floor_of(module)
    upward = [t for t in imports(MODULES[module]) if t in MODULES and floor_of(t) > mine]
    assert not upward, f"{module} (floor {mine}) imports {upward} from above"


def test_no_import_cycles():
    graph = {m: {t for t in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    graph["electra"] = set()  # the package's own __init__ re-exports the API; nothing imports it
    for m in graph:
        graph[m].discard("electra")
    seen, stack = set(), []

    def visit(m: str) -> None:
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in seen:
            return
        stack.append(m)
        for t in sorted(graph[m]):
            visit(t)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        visit(m)
