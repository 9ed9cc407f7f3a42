"""The layers read top to bottom: importing the scanner loads neither the bench harness, the
dataset loader, training nor TensorFlow (a package's names load on first use), and no edgecnn
module imports one that imports it back, not even inside a function."""

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgecnn"


def _loaded(stmt: str) -> set[str]:
    code = f"import json, sys; {stmt}; print(json.dumps(sorted(m for m in sys.modules if m.startswith(('edgecnn', 'tensorflow')))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_scan_loads_only_what_it_uses():
    mods = _loaded("import edgecnn.scan")
    assert not {m for m in mods if m.startswith("tensorflow")}
    for heavy in ("edgecnn.bench.harness", "edgecnn.bench.data", "edgecnn.data.dataset", "edgecnn.data.split",
                  "edgecnn.data.cache", "edgecnn.train", "edgecnn.export"):
        assert heavy not in mods, heavy
    assert len(mods) <= 25, sorted(mods)


def test_package_names_still_resolve():
    mods = _loaded("from edgecnn.data import load_patches, DataError, Split; from edgecnn.bench import run_bench, Latency")
    assert {"edgecnn.data.dataset", "edgecnn.data.split", "edgecnn.bench.harness"} <= mods
    import edgecnn.bench
    import edgecnn.data

    for pkg in (edgecnn.data, edgecnn.bench):
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _import_graph() -> dict[str, set[str]]:
    """module -> the edgecnn modules it imports anywhere in its body (functions included).

    ``from edgecnn.a import b`` is an edge to ``edgecnn.a.b`` when that is a module, else to
    ``edgecnn.a``; relative imports are resolved against the importing module's package."""
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for name in names:
                target = owner(name) if name == "edgecnn" or name.startswith("edgecnn.") else None
                if target and target != mod:
                    graph[mod].add(target)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colours on the stack)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(mod: str) -> list[str] | None:
        state[mod] = 1
        path.append(mod)
        for nxt in sorted(graph[mod]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[mod] = 2
        return None

    for mod in sorted(graph):
        if mod not in state and (found := visit(mod)):
            return found
    return None


def test_the_cycle_finder_sees_imports_inside_functions():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = _import_graph()
    assert len(graph) > 100
    assert "edgecnn.scan.profile" in graph["edgecnn.scan.scanner"]
    assert "edgecnn.scan.tiling" in graph["edgecnn.scan.scanner"]
    assert "edgecnn._tf" in graph["edgecnn.train.predict"]  # imported inside predict_probs


def test_no_import_cycles_inside_edgecnn():
    cycle = _find_cycle(_import_graph())
    assert cycle is None, "edgecnn modules import each other in a circle: " + " -> ".join(cycle)
