"""The import graph of the ``i2i`` package, read from the source with ``ast`` (nothing is imported).

    python tools/import_graph.py            # modules, edges, cycles, who imports i2i.translate
    python tools/import_graph.py --edges    # also every edge

Every import counts, including those inside functions (a deferred import is still a dependency:
it only hides a circle from Python, not from the reader). Relative imports are resolved;
``from . import x`` where ``x`` is a submodule counts as importing that submodule, and importing a
package counts as importing its ``__init__`` (named by the package, e.g. ``i2i.nets``). Importing
``a.b.c`` also runs ``a`` and ``a.b``, but those implicit parent imports are not edges here: only
the module named is.

A cycle is a strongly connected component of more than one module; one concrete cycle path is
printed for each.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "i2i"


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a package is named by itself)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a ``from ... import`` target seen in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _owner(name: str, modules: set[str]) -> str | None:
    """The longest known module that ``name`` is or lies inside (``i2i.runs.Run`` -> ``i2i.runs``)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def _walk(tree: ast.AST, eager_only: bool):
    """Every node of ``tree``; with ``eager_only``, not those that run later or never at import time:
    function bodies and ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if eager_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if eager_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(module: str, path: Path, modules: set[str], eager_only: bool = False) -> tuple[set[str], set[str]]:
    """(the package modules, the outside top-level packages) that ``module`` imports anywhere in its
    file, or with ``eager_only`` only where they run when the module is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    outside: set[str] = set()
    for node in _walk(tree, eager_only):
        if isinstance(node, ast.Import):
            for alias in node.names:
                owner = _owner(alias.name, modules)
                if owner:
                    found.add(owner)
                else:
                    outside.add(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            if node.level == 0 and not _owner(target, modules):
                if target != "__future__":
                    outside.add(target.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # from . import x, x a submodule
                    found.add(sub)
                else:
                    owner = _owner(target, modules)
                    if owner:
                        found.add(owner)
    found.discard(module)
    return found, outside


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its file)."""
    files = module_files(root, package)
    names = set(files)
    return {m: imports_of(m, p, names)[0] for m, p in files.items()}


def eager_import_chain(start: str, outside: str, root: Path = ROOT, package: str = PACKAGE) -> list[str] | None:
    """The chain of imports by which importing ``start`` imports the outside package ``outside``
    (e.g. ``torch``) at once, function bodies not run: ``[start, ..., module, outside]``, or None.
    Importing a module runs its parent packages' ``__init__`` first, so those count as imported."""
    files = module_files(root, package)
    names = set(files)
    eager = {m: imports_of(m, p, names, eager_only=True) for m, p in files.items()}
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        inside, outer = eager[node]
        if outside in outer:
            chain = [outside, node]
            while parent[chain[-1]] is not None:
                chain.append(parent[chain[-1]])
            return chain[::-1]
        parents = {".".join(node.split(".")[:i]) for i in range(1, node.count(".") + 1)}
        for child in sorted(inside | parents):
            if child in eager and child not in parent:
                parent[child] = node
                queue.append(child)
    return None


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted; components sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return sorted(out)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module."""
    return [c for c in strongly_connected(graph) if len(c) > 1]


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside ``component``: the shortest path from its first module back to
    itself (breadth-first, within the component); first and last element are the same."""
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, start]
            if child not in seen:
                seen.add(child)
                parent[child] = node
                queue.append(child)
    return []


def importers(graph: dict[str, set[str]], module: str) -> list[str]:
    return sorted(m for m, deps in graph.items() if module in deps)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="also print every edge")
    parser.add_argument("--of", default=f"{PACKAGE}.translate", help="list the importers of this module")
    args = parser.parse_args(argv)
    graph = import_graph()
    print(f"modules: {len(graph)}")
    print(f"edges: {sum(len(v) for v in graph.values())}")
    found = cycles(graph)
    print(f"cycles (strongly connected components of more than one module): {len(found)}")
    for component in found:
        print(f"  [{len(component)}] {', '.join(component)}")
        print(f"      e.g. {' -> '.join(cycle_path(graph, component))}")
    who = importers(graph, args.of)
    print(f"modules importing {args.of}: {len(who)}")
    for m in who:
        print(f"  {m}")
    if args.edges:
        print("edges:")
        for m in sorted(graph):
            for d in sorted(graph[m]):
                print(f"  {m} -> {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
