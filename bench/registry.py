"""Typed registries of datasets, retrievers and generators.

Entries are lazy: a name maps to a factory or to an ``"module:attr"`` string that is imported
only when the entry is built, so ``bench ls`` stays fast and optional dependencies stay
optional. Third parties add entries without forking, through the entry-point groups
``lavic_bench.retrievers`` / ``lavic_bench.generators`` / ``lavic_bench.datasets`` (the entry
point's object is called with the registry) or with ``--include file.py``. Registering a name
twice is an error, never a silent overwrite.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    target: Callable[..., T] | str
    summary: str
    origin: str

    def load(self) -> Callable[..., T]:
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)


class Registry(Generic[T]):
    """Name -> lazy factory. ``build(name, **kwargs)`` imports and calls the factory."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        target: Callable[..., T] | str,
        summary: str,
        *,
        origin: str = "builtin",
    ) -> None:
        if name in self._entries:
            prior = self._entries[name].origin
            raise BenchError(
                f"{self.kind} {name!r} from {origin} is already registered by {prior}",
                hint="choose another name; registries never overwrite",
            )
        self._entries[name] = Entry(name, target, summary, origin)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise BenchError(
                f"unknown {self.kind} {name!r}",
                hint=f"known: {known}; see `bench ls`, or add one with --include FILE.py",
            ) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.entry(name).load()(*args, **kwargs)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


datasets: Registry[Any] = Registry("dataset")
retrievers: Registry[Any] = Registry("retriever")
generators: Registry[Any] = Registry("generator")

_GROUPS = {
    "lavic_bench.datasets": datasets,
    "lavic_bench.retrievers": retrievers,
    "lavic_bench.generators": generators,
}
_plugins_loaded = False


def load_plugins() -> None:
    """Register built-ins, then every installed entry point (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import baselines  # noqa: F401  (registers the built-in retrievers and generators)
    from bench.data import register_builtin

    register_builtin(datasets)

    for group, registry in _GROUPS.items():
        for ep in entry_points(group=group):
            hook = ep.load()
            hook(registry)


def include(path: str | Path) -> None:
    """Execute a user file that registers entries (``--include my_retriever.py``)."""
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"--include file {file} does not exist", hint="pass a .py file path")
    name = f"bench_include_{abs(hash(file.resolve()))}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {file}", hint="pass a .py file path")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BenchError:
        raise
    except Exception as exc:  # a plug-in's own bug: report where, keep it one line
        del sys.modules[name]
        raise BenchError(f"{type(exc).__name__}: {exc}", where=str(file)) from exc
