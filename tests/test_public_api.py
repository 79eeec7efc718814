"""What the documentation promises plug-in authors and analysts keeps working: every name it
documents imports from the path it gives, every path it names exists, the entry points load,
and the README's plug-in example registers a working retriever."""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bench.core import registry
from bench.task.data.schema import Catalog, Conversation, Item

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "lavic" / "README.md", ROOT / "BENCHMARKS.md",
        ROOT / "bench" / "defaults" / "reported.md", ROOT / "ARCHITECTURE.md"]
#: Written from the docs by hand: (module, name) as a reader is told to import it.
DOCUMENTED = [
    # README "Plug-ins": everything a plug-in uses, from ``bench`` itself.
    *(("bench", name) for name in (
        "retrievers", "generators", "datasets", "takes", "Options", "NoOptions", "BuildContext",
        "Retriever", "Generator", "CachedGenerator", "Request", "Choice", "Item",
        "Conversation", "Catalog", "BenchError", "Warnings")),
    # README "Statistics" and lavic/README: frames for your own analysis, the one hit rule.
    ("bench.results", "load"), ("bench.results", "pairs"), ("bench.results", "hit"),
    ("bench.results.positions", "load"),
    ("bench.task.prompt", "render"),  # BENCHMARKS.md
    ("bench.results.paper", "unique"),  # bench/defaults/reported.md
    ("bench.cli", "app"),  # [project.scripts] bench
]


@pytest.mark.parametrize(("module", "name"), DOCUMENTED, ids=lambda v: str(v))
def test_documented_name_imports_from_its_path(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def _mentions(pattern: str) -> set[str]:
    return {m for doc in DOCS for m in re.findall(pattern, doc.read_text(encoding="utf-8"))}


def test_every_path_the_docs_name_exists() -> None:
    files = _mentions(r"`((?:bench|baselines|lavic)/[\w/]+\.\w+)`")
    assert {"bench/task/prompt.py", "lavic/stage2/config.py"} <= files  # the pattern works
    assert sorted(f for f in files if not (ROOT / f).is_file()) == []


def _resolves(name: str) -> bool:
    """The longest importable prefix of ``name`` is a module holding the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(target, attr):
                return False
            target = getattr(target, attr)
        return True
    return False


def test_every_dotted_name_the_docs_use_resolves() -> None:
    dotted = _mentions(r"`(bench(?:\.\w+)+)(?:\(\w*\))?`") - {"bench.toml"}
    assert {"bench.results.load", "bench.results.positions.load"} <= dotted
    assert sorted(name for name in dotted if not _resolves(name)) == []


def test_entry_points_load_as_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {**declared["entry-points"], "console_scripts": declared["scripts"]}
    for group, entries in groups.items():
        installed = {ep.name: ep for ep in entry_points(group=group)
                     if ep.dist is not None and ep.dist.name == registry.DISTRIBUTION}
        assert {n: ep.value for n, ep in installed.items()} == entries, (
            f"{group}: installed metadata is stale; reinstall (pip install -e .)")
        for ep in installed.values():
            assert callable(ep.load()), ep.value


def test_readme_plugin_example_registers_a_working_retriever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Plug-ins"):]
    start = section.index("```python\n") + len("```python\n")
    example = section[start:section.index("\n```", start)]
    assert "from bench import retrievers" in example
    plugin = tmp_path / "my_retriever.py"
    plugin.write_text(example + "\n", encoding="utf-8")
    registry.load_plugins()
    monkeypatch.setattr(registry.retrievers, "_entries", dict(registry.retrievers._entries))
    registry.include(plugin)
    mine = registry.retrievers.build("mine", None)
    catalog = Catalog({a: Item(asin=a, title=a) for a in ("B000000001", "B000000002")})
    mine.index(catalog)
    talk = [Conversation(id="c1", context="hi"), Conversation(id="c2", context="hello")]
    assert mine.search(talk, 1) == [["B000000001"], ["B000000001"]]
    assert isinstance(mine, importlib.import_module("bench").Retriever)
