"""The codebase itself: one dependency order among the project's files (world -> genes -> model -> ... ->
train -> the studies), read from every import statement, lazy ones inside functions included."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports() -> dict[str, set[str]]:
    """Each project file -> the project files it imports (anywhere in it)."""
    mods = {p.stem for p in ROOT.glob("*.py")}
    out = {}
    for p in ROOT.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module in mods and not node.level:
                deps.add(node.module)
        out[p.stem] = deps - {p.stem}
    return out


def test_no_import_circle_among_the_projects_files():
    graph, order, state = imports(), [], {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import circle: " + " -> ".join(path[path.index(m):] + [m])
        state[m] = "open"
        for d in sorted(graph[m]):
            visit(d, path + [m])
        state[m] = "done"
        order.append(m)

    for m in sorted(graph):
        visit(m, [])
    assert {"world", "model", "targets", "life", "train", "study", "compare"} <= set(order)
    assert order.index("model") < order.index("targets") < order.index("life") < order.index("train") \
        < order.index("study") < order.index("compare")  # the order the files are read in


def test_hosts_imports_nothing_of_the_project():
    """train.py joins JAX's distributed runtime through hosts.py before Craftax makes its first arrays, so
    hosts.py may import no project file (each of them reaches world.py, which imports Craftax)."""
    assert imports()["hosts"] == set()
