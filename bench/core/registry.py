"""Typed registries of datasets, retrievers and generators, filled from entry points.

Entries are lazy: a name maps to a factory or to an ``"module:attr"`` string that is imported
only when the entry is built, so ``bench ls`` stays fast and optional dependencies stay
optional. Built-ins and third-party plug-ins arrive the same way, through the entry-point
groups ``lavic_bench.datasets`` / ``lavic_bench.retrievers`` / ``lavic_bench.generators`` (the
entry point's object is called with the registry), so the harness never imports ``baselines``
or ``lavic``; ``--include file.py`` adds entries from a file. ``lavic_bench.cli`` holds typer
apps mounted as ``bench <name> ...``. Registering a name twice is an error, never a silent
overwrite. A broken plug-in is a one-line error naming it and its distribution; a broken
built-in (this distribution) raises its real error, since that is a bug or a missing
dependency to see in full.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.core.errors import BenchError

T = TypeVar("T")
BUILTIN = "builtin"
DISTRIBUTION = "lavic-bench"  # entry points of this distribution are the built-ins
CLI_GROUP = "lavic_bench.cli"


def plugin_error(what: str, origin: str, exc: BaseException) -> BenchError:
    """The one line for a third-party plug-in that fails to load or build."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return BenchError(
        f"plug-in {what} failed: {type(exc).__name__}: {first}",
        where=origin,
        hint="fix, upgrade or uninstall that plug-in",
    )


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
        try:
            return getattr(importlib.import_module(module_name), attr)
        except Exception as exc:
            if self.origin == BUILTIN:
                raise
            raise plugin_error(f"{self.name!r} ({self.target})", self.origin, exc) from exc


class Registry(Generic[T]):
    """Name -> lazy factory. ``build(name, **kwargs)`` imports and calls the factory. Any
    lookup first loads the installed entry points, so a name never depends on who asked first."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        target: Callable[..., T] | str,
        summary: str,
        *,
        origin: str = BUILTIN,
    ) -> None:
        if name in self._entries:
            prior = self._entries[name].origin
            raise BenchError(
                f"{self.kind} {name!r} from {origin} is already registered by {prior}",
                hint="choose another name; registries never overwrite",
            )
        self._entries[name] = Entry(name, target, summary, origin)

    def entry(self, name: str) -> Entry[T]:
        load_plugins()
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
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        load_plugins()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


@dataclass(frozen=True)
class _Scoped:
    """A registry as one plug-in sees it: its entries default to the plug-in's origin."""

    registry: Registry[Any]
    origin: str

    def register(self, name: str, target: Any, summary: str, *, origin: str | None = None
                 ) -> None:
        self.registry.register(name, target, summary, origin=origin or self.origin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)


datasets: Registry[Any] = Registry("dataset")
retrievers: Registry[Any] = Registry("retriever")
generators: Registry[Any] = Registry("generator")

GROUPS = {
    "lavic_bench.datasets": datasets,
    "lavic_bench.retrievers": retrievers,
    "lavic_bench.generators": generators,
}
_plugins_loaded = False


def origin_of(ep: EntryPoint) -> str:
    """``builtin`` for this distribution's entry points, else ``name version``."""
    dist = ep.dist
    if dist is None:
        return f"entry point {ep.name} = {ep.value}"
    if dist.name == DISTRIBUTION:
        return BUILTIN
    return f"{dist.name} {dist.version}"


def load_entry_point(ep: EntryPoint, group: str) -> Any:
    """``ep.load()``; a third-party failure is one line naming the entry point and origin."""
    origin = origin_of(ep)
    try:
        return ep.load()
    except Exception as exc:
        if origin == BUILTIN:
            raise
        raise plugin_error(f"[{group}] {ep.name} = {ep.value}", origin, exc) from exc


def load_plugins() -> None:
    """Register every installed entry point, built-ins included (once per process)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    builtin = 0
    for group, registry in GROUPS.items():
        for ep in entry_points(group=group):
            origin = origin_of(ep)
            builtin += origin == BUILTIN
            hook = load_entry_point(ep, group)
            try:
                hook(_Scoped(registry, origin))
            except BenchError:
                raise
            except Exception as exc:
                if origin == BUILTIN:
                    raise
                raise plugin_error(f"[{group}] {ep.name} = {ep.value}", origin, exc) from exc
    if not builtin:
        raise BenchError(
            f"the installed {DISTRIBUTION} declares no lavic_bench.* entry points",
            hint="its metadata is stale: reinstall it (pip install -e . in a checkout)",
        )


def cli_apps() -> list[tuple[str, Any]]:
    """(name, typer app) for each ``lavic_bench.cli`` entry point; a broken one becomes a
    (name, BenchError) pair so the other commands keep working."""
    apps: list[tuple[str, Any]] = []
    for ep in entry_points(group=CLI_GROUP):
        try:
            apps.append((ep.name, load_entry_point(ep, CLI_GROUP)))
        except BenchError as exc:
            apps.append((ep.name, exc))
    return apps


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
