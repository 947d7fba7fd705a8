"""The import graph of i2i (read from the source by tools/import_graph.py; every import counts, also
those inside functions): no circles between modules, and the CLI starts without torch."""

import fnmatch

from conftest import load_tool

graph_tool = load_tool("import_graph")

# Imports allowed to close a circle, as (importer, imported) patterns (fnmatch), each with its reason.
# It is empty, and meant to stay so.
ALLOWED_CIRCLE_EDGES: dict[tuple[str, str], str] = {}


def _allowed(importer: str, imported: str) -> bool:
    return any(fnmatch.fnmatchcase(importer, a) and fnmatch.fnmatchcase(imported, b) for a, b in ALLOWED_CIRCLE_EDGES)


def test_the_graph_sees_every_import():
    """Deferred imports (inside functions), relative imports and `from . import submodule` are edges."""
    graph = graph_tool.import_graph()
    assert "i2i.translate" in graph["i2i.cli"]  # imported inside the translate command only
    assert "i2i.data.codecs" in graph["i2i.translate"]  # from .data.codecs import ...
    assert {"i2i.nets.resnet", "i2i.nets.unet"} <= graph["i2i.nets"]  # from . import dcgan, ..., resnet, unet
    assert "i2i.errors" in graph["i2i.data.images"]  # from ..errors import ...


def test_no_import_circles():
    graph = graph_tool.import_graph()
    pruned = {m: {d for d in deps if not _allowed(m, d)} for m, deps in graph.items()}
    circles = [" -> ".join(graph_tool.cycle_path(pruned, c)) for c in graph_tool.cycles(pruned)]
    assert not circles, f"import circles (a module that its own imports import again): {circles}"


def test_the_cli_imports_no_torch_when_it_starts():
    """The static side of test_cli's test_help_does_not_import_torch: that one runs the import, this one
    names the chain of module-level imports that would bring torch in (function bodies not run)."""
    assert graph_tool.eager_import_chain("i2i.cli", "torch") is None, \
        " -> ".join(graph_tool.eager_import_chain("i2i.cli", "torch"))
