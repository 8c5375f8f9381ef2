"""The import contract: imports point one way (pipeline <- trainer <- eval, docs: the house) and no module reaches
itself through its imports.

The graph is grimp's (the engine of import-linter): every ``spatialdc.*`` import in the source, function-level ones
included. The one-way contracts are import-linter's, as ``pyproject.toml`` writes them (``[tool.importlinter]``; the
command ``lint-imports`` checks the same); cycles are found here over the whole graph. The last tests feed the same
checks a small package tree with an upward import and a cycle, and show that they fail.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "trainer", "eval", "models")


CONTRACTS = ("pipeline-is-the-base", "trainer-below-eval", "acyclic-within-packages")  # their ids in pyproject.toml


def kept(pyproject: Path, contract: str) -> bool:
    """Whether the import-linter contract of id ``contract`` in ``pyproject`` holds (its report, with the chain of
    imports that breaks it, goes to stdout; nothing is cached; a bad configuration raises)."""
    configuration.configure()
    return lint_imports(str(pyproject), limit_to_contracts=(contract,), cache_dir=None, is_debug_mode=True,
                        no_logo=True)


def import_graph(namespace: str) -> dict[str, set[str]]:
    """Module -> the project modules it imports (any import statement, in functions too)."""
    graph = grimp.build_graph(*(f"{namespace}.{p}" for p in PACKAGES), include_external_packages=False,
                              cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node, or of one node importing itself (Tarjan 1972):
    each is a set of modules that import one another round a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1 or v in edges.get(v, ()):
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between the top-level packages (``spatialdc.eval`` -> ``spatialdc.models``...)."""
    top = {m: ".".join(m.split(".")[:2]) for m in edges}
    out: dict[str, set[str]] = {}
    for m, imported in edges.items():
        out.setdefault(top[m], set()).update(top[x] for x in imported if top[x] != top[m])
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph("spatialdc")


def test_pipeline_imports_neither_trainer_eval_nor_models():
    assert kept(ROOT / "pyproject.toml", "pipeline-is-the-base")


def test_trainer_does_not_import_eval():
    assert kept(ROOT / "pyproject.toml", "trainer-below-eval")


def test_pipeline_has_no_import_cycle(graph):
    assert not [c for c in cycles(graph) if any(m.startswith("spatialdc.pipeline") for m in c)]


def test_no_module_import_cycle_anywhere(graph):
    assert kept(ROOT / "pyproject.toml", "acyclic-within-packages")
    assert not cycles(graph)


def test_the_packages_import_one_another_without_a_cycle(graph):
    assert not cycles(package_edges(graph))


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    """A tree shaped like ours under the namespace ``spatialdc_toy``, importing one way, with our contracts."""
    write_tree(tmp_path, {f"spatialdc_toy/{p}/__init__.py": "" for p in PACKAGES})
    write_tree(tmp_path, {
        "spatialdc_toy/pipeline/shards.py": "from . import specs\n",
        "spatialdc_toy/pipeline/specs.py": "",
        "spatialdc_toy/trainer/loop.py": "from spatialdc_toy.pipeline import shards\n",
        "spatialdc_toy/eval/cli.py": "from spatialdc_toy.trainer import loop\n",
    })
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text().replace("spatialdc.", "spatialdc_toy."))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("spatialdc_toy")]:
        del sys.modules[name]


def test_the_toy_tree_keeps_the_contracts(toy):
    assert all(kept(toy / "pyproject.toml", c) for c in CONTRACTS)
    assert not cycles(import_graph("spatialdc_toy"))


def test_an_upward_import_inside_a_function_breaks_the_contract(toy):
    write_tree(toy, {"spatialdc_toy/pipeline/specs.py": "def hidden():\n    from spatialdc_toy.trainer import loop\n"})
    assert not kept(toy / "pyproject.toml", "pipeline-is-the-base")
    assert kept(toy / "pyproject.toml", "trainer-below-eval")
    assert cycles(import_graph("spatialdc_toy"))  # pipeline.shards -> specs -> trainer.loop -> pipeline.shards


def test_a_cycle_between_two_modules_is_found(toy):
    write_tree(toy, {"spatialdc_toy/pipeline/specs.py": "def hidden():\n    from . import shards\n"})
    assert not kept(toy / "pyproject.toml", "acyclic-within-packages")
    assert cycles(import_graph("spatialdc_toy")) == [["spatialdc_toy.pipeline.shards", "spatialdc_toy.pipeline.specs"]]
