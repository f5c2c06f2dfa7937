"""The package's import graph, read with ``ast``: no import circle, and the layers of
docs/ARCHITECTURE.md import only what they may.

Every ``import``/``from ... import`` statement counts, wherever it stands (module level, inside a
function, under ``if TYPE_CHECKING``): a circle through a function-level import still ties two
modules together. Names resolved at run time (``importlib.import_module``, the "module:Class"
strings of the nets and fusion registries) are the sanctioned way to reach downwards lazily and
are not edges. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first; those implicit
parent imports are not edges either (a package may re-export its submodules).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medfuse"

#: (importer prefix, imported prefix, why): imports that break the layering.
FORBIDDEN = [
    ("medfuse.fusion", "medfuse.engines", "inference must not depend on the training engine"),
    ("medfuse.batch", "medfuse.cli", "the batch library must not depend on the command line"),
    ("medfuse.nets", "medfuse.io", "the networks must not depend on the file readers/writers"),
]

#: modules outside medfuse.cli that may import it: the ``python -m medfuse`` entry point.
CLI_ENTRY_POINTS = {"medfuse.__main__"}

#: the layers of docs/ARCHITECTURE.md, lowest first: a part imports only parts of lower layers
#: (and its own modules); parts of one layer do not import each other.
LAYERS: list[set[str]] = [
    {"medfuse.errors"},
    {"medfuse"},
    {"medfuse.io", "medfuse.data", "medfuse.runtime"},
    {"medfuse.transforms"},
    {"medfuse.registration", "medfuse.metrics", "medfuse.pacs"},
    {"medfuse.nets"},
    {"medfuse.losses", "medfuse.fusion"},
    {"medfuse.engines"},
    {"medfuse.bundle", "medfuse.batch"},
    {"medfuse.integrations"},
    {"medfuse.cli"},
    {"medfuse.__main__"},
]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_files(package: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every ``.py`` file under ``package``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(candidate: str, known: Iterable[str]) -> str | None:
    """The longest known module that ``candidate`` names or lies in (None: not ours)."""
    parts = candidate.split(".")
    known = set(known)
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in known:
            return name
    return None


def module_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports anywhere in its body."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base_parts = here[: len(here) - node.level + 1] if node.level else []
            base = ".".join(base_parts + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for t in targets:
            target = _resolve(t, known)
            if target is not None and target != name:
                found.add(target)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` for every module of ``package``."""
    files = module_files(package)
    known = set(files)
    return {name: module_imports(name, path, known) for name, path in files.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected component of more than one module, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that breaks :data:`FORBIDDEN` or reaches ``medfuse.cli`` from outside."""
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            for a, b, why in FORBIDDEN:
                if _within(src, a) and _within(dst, b):
                    bad.append(f"{src} -> {dst}: {why}")
            if (_within(dst, "medfuse.cli") and not _within(src, "medfuse.cli")
                    and src not in CLI_ENTRY_POINTS):
                bad.append(f"{src} -> {dst}: only the command line imports medfuse.cli")
    return bad


def part(module: str) -> str:
    """The part a module belongs to: ``medfuse.fusion.base`` -> ``medfuse.fusion``."""
    return ".".join(module.split(".")[:2])


def layer_violations(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """One line per import between parts that does not go to a lower layer."""
    rank = {p: i for i, ps in enumerate(layers) for p in ps}
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = part(src), part(dst)
            if a == b:
                continue
            if a not in rank or b not in rank:
                bad.append(f"{src} -> {dst}: {a if a not in rank else b} has no layer")
            elif rank[b] >= rank[a]:
                bad.append(f"{src} -> {dst}: layer {rank[a]} may not import layer {rank[b]}")
    return bad


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE)


def test_no_import_cycle(graph) -> None:
    assert import_cycles(graph) == []


def test_layers_import_only_downwards(graph) -> None:
    assert layering_violations(graph) == []


def test_parts_import_only_lower_layers(graph) -> None:
    assert layer_violations(graph, LAYERS) == []


def test_the_layers_are_those_of_the_architecture_guide() -> None:
    doc = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    rows = [line.split("|") for line in doc.splitlines() if re.match(r"\| \d+ \|", line)]
    documented = [
        {"medfuse" if n == "medfuse" else f"medfuse.{n}" for n in re.findall(r"`([^`]+)`", r[2])}
        for r in rows
    ]
    assert [int(r[1]) for r in rows] == list(range(len(LAYERS)))
    assert documented == LAYERS


def test_the_graph_sees_the_package(graph) -> None:
    # the walk is not vacuous: known edges of the package are found, function-level ones too
    assert "medfuse.errors" in graph["medfuse.io.volume"]
    assert "medfuse.fusion.pipeline" in graph["medfuse.fusion.run"]  # imported inside a function
    assert "medfuse.cli" in graph["medfuse.__main__"]
    assert len(graph) > 80


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "medfuse"


def test_walker_finds_circles_and_bad_layers(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "medfuse/__init__.py": "",
        "medfuse/__main__.py": "from medfuse.cli import main\n",
        "medfuse/cli/__init__.py": "def main():\n    from . import run\n",
        "medfuse/cli/run.py": "",
        "medfuse/engines/__init__.py": "",
        "medfuse/engines/card.py": "import medfuse.fusion.base as b\n",
        "medfuse/fusion/__init__.py": "from .base import X\n",
        "medfuse/fusion/base.py": (
            "import importlib\nX = 1\n\ndef names():\n    from medfuse.fusion import classical\n"
            "    return importlib.import_module('medfuse.io')\n"),
        "medfuse/fusion/classical.py": "from .base import X\n",
        "medfuse/fusion/auto.py": "def f():\n    from ..engines.card import compare\n",
        "medfuse/nets/__init__.py": "from medfuse.nets.pretrained import load\n",
        "medfuse/nets/pretrained.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from medfuse.io.checksums import h\n"),
        "medfuse/io/__init__.py": "",
        "medfuse/io/checksums.py": "",
        "medfuse/batch/options.py": "def f():\n    import medfuse.cli.run\n",
    })
    g = import_graph(pkg)
    assert g["medfuse.fusion.base"] == {"medfuse.fusion.classical"}  # importlib is no edge
    assert g["medfuse.fusion"] == {"medfuse.fusion.base"}
    assert g["medfuse.cli"] == {"medfuse.cli.run"}
    assert import_cycles(g) == [["medfuse.fusion.base", "medfuse.fusion.classical"]]
    layers = [{"medfuse"}, {"medfuse.io"}, {"medfuse.nets"}, {"medfuse.fusion"},
              {"medfuse.engines"}, {"medfuse.batch"}, {"medfuse.cli"}, {"medfuse.__main__"}]
    assert layer_violations(g, layers) == [
        "medfuse.batch.options -> medfuse.cli.run: layer 5 may not import layer 6",
        "medfuse.fusion.auto -> medfuse.engines.card: layer 3 may not import layer 4",
    ]
    assert layer_violations(g, [{"medfuse.nets", "medfuse.io"}, *layers[3:]])[-1] == (
        "medfuse.nets.pretrained -> medfuse.io.checksums: layer 0 may not import layer 0")
    assert [line.split(":")[0] for line in layering_violations(g)] == [
        "medfuse.batch.options -> medfuse.cli.run",  # batch -> cli
        "medfuse.batch.options -> medfuse.cli.run",  # and a library module -> cli
        "medfuse.fusion.auto -> medfuse.engines.card",
        "medfuse.nets.pretrained -> medfuse.io.checksums",  # under TYPE_CHECKING too
    ]
