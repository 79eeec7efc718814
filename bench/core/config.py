"""bench.toml -> a frozen, hashable run spec (HELM-style: every cell's inputs are explicit).

Precedence: CLI options > ``--config FILE`` (or ./bench.toml) > the default grid that ships
inside the package (``bench/defaults/bench.toml``), so an installed wheel runs from any folder.
``[run]`` is checked by ``RunOptions``, and the CLI's values go through the same schema, so
``--limit 0`` fails exactly as ``limit = 0`` does. The ``[datasets.*]``, ``[retrievers.*]`` and
``[generators.*]`` tables are checked against each entry's own schema (``bench.core.options``) when
a run starts; unknown keys and wrong types are one-line errors that name the file and key.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, NonNegativeFloat, PositiveInt, StringConstraints

from bench.core import options as schemas
from bench.core.errors import BenchError
from bench.core.redact import redact
from bench.core.weights import ModelPaths

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "defaults" / "bench.toml"
#: The model name of a cell with no generator: the retriever's top item is the answer.
NO_MODEL = "none"
_TOP_KEYS = {"run", "datasets", "models", "retrievers", "generators", "prices"}
_Name = Annotated[str, StringConstraints(min_length=1)]
_Names = Annotated[list[_Name], Field(min_length=1)]


class RunOptions(schemas.Options):
    """``[run]``; the CLI's options of the same names override it."""

    dataset: _Name = "synthetic"
    domains: list[_Name] = Field([], description="default: every domain the dataset has")
    split: _Name = "test"
    retrievers: _Names = Field(["bm25"], description="at least one retriever name")
    models: _Names = Field([NO_MODEL], description="at least one model name ('none' = retriever)")
    top_k: PositiveInt = 10
    seed: int = 0
    limit: PositiveInt | None = Field(None, description="a positive number of conversations")
    out: _Name = "runs/default"
    keep_order: bool = False
    batch_size: PositiveInt = 8
    strict: bool = False


class Price(schemas.Options):
    input_per_mtok: NonNegativeFloat
    output_per_mtok: NonNegativeFloat


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return FrozenMap(value)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain dicts and lists again (for JSON and for factories that expect them)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping (nested tables and lists frozen too), so a RunSpec can be
    a dict key and nothing can change it after it is read."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = {str(k): _freeze(v) for k, v in (data or {}).items()}

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


_TABLE_FIELDS = ("dataset_tables", "retriever_options", "generator_options", "model_paths",
                 "prices")


@dataclass(frozen=True)
class RunSpec:
    dataset: str = "synthetic"
    domains: tuple[str, ...] = ()  # empty = every domain the dataset has
    split: str = "test"
    retrievers: tuple[str, ...] = ("bm25",)
    models: tuple[str, ...] = (NO_MODEL,)
    top_k: int = 10
    seed: int = 0
    limit: int | None = None
    out: str = "runs/default"
    keep_order: bool = False
    batch_size: int = 8
    strict: bool = False
    dataset_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenMap)
    retriever_options: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenMap)
    generator_options: Mapping[str, Mapping[str, Any]] = field(default_factory=FrozenMap)
    model_paths: Mapping[str, str] = field(default_factory=FrozenMap)
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=FrozenMap)
    source: str = "defaults"

    def __post_init__(self) -> None:
        """Tables given as dicts (tests, plug-ins) are frozen too."""
        for name in _TABLE_FIELDS:
            object.__setattr__(self, name, FrozenMap(getattr(self, name)))
        for name in ("domains", "retrievers", "models"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def dataset_options(self) -> dict[str, Any]:
        return thaw(self.dataset_tables.get(self.dataset, {}))

    @property
    def models_table(self) -> ModelPaths:
        return ModelPaths(dict(self.model_paths))

    def table(self, kind: str, name: str) -> dict[str, Any]:
        """``[retrievers.NAME]`` / ``[generators.NAME]`` as a plain dict ({} when absent)."""
        tables = self.retriever_options if kind == "retrievers" else self.generator_options
        return thaw(tables.get(name, {}))

    def where(self, kind: str, name: str) -> str:
        """How errors name a table: ``bench.toml [generators.vicuna]``."""
        return f"{self.source} [{kind}.{name}]"

    def cell_spec(self, domain: str, retriever: str, model: str) -> dict[str, Any]:
        """Everything that can change one cell's predictions -- and nothing else (so not the
        credentials a server URL may carry: they are masked)."""
        return {
            "dataset": self.dataset,
            "dataset_options": self.dataset_options,
            "domain": domain,
            "split": self.split,
            "retriever": retriever,
            "retriever_options": redact(self.table("retrievers", retriever)),
            "model": model,
            "generator_options": redact(self.table("generators", model)),
            "top_k": self.top_k,
            "seed": self.seed,
            "limit": self.limit,
            "keep_order": self.keep_order,
        }

    def as_dict(self) -> dict[str, Any]:
        return {f.name: thaw(getattr(self, f.name)) for f in fields(self)}


def spec_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _check_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BenchError("expected a table", where=where)
    return value


def _nested(raw: dict[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    table = _check_table(raw.get(key, {}), f"{where} [{key}]")
    return {name: _check_table(v, f"{where} [{key}.{name}]") for name, v in table.items()}


def _run_values(run: RunOptions) -> dict[str, Any]:
    values = run.model_dump()
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def parse(raw: dict[str, Any], where: str) -> RunSpec:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise BenchError(
            f"unknown table {unknown[0]!r}",
            where=where,
            hint=f"known: {', '.join(sorted(_TOP_KEYS))}",
        )
    run = _check_table(raw.get("run", {}), f"{where} [run]")
    values = _run_values(schemas.validate(RunOptions, run, f"{where} [run]"))
    models = _check_table(raw.get("models", {}), f"{where} [models]")
    if not all(isinstance(v, str) for v in models.values()):
        raise BenchError("[models] values must be paths (strings)", where=where)
    prices = _nested(raw, "prices", where)
    for model, price in prices.items():
        schemas.validate(Price, price, f"{where} [prices.{model}]")
    return RunSpec(
        **values,
        dataset_tables=_nested(raw, "datasets", where),
        retriever_options=_nested(raw, "retrievers", where),
        generator_options=_nested(raw, "generators", where),
        model_paths=models,
        prices=prices,
        source=where,
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text)
    except OSError as exc:
        raise BenchError(f"cannot read config: {exc.strerror}", where=str(path)) from None
    except UnicodeDecodeError:
        raise BenchError("config is not UTF-8", where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11 puts the position only in the message: "... (at line 3, column 7)".
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = found.group(1) if found else str(len(text.splitlines()))  # "at end of document"
        message = re.sub(r"\s*\(at (line|end).*\)$", "", str(exc))
        raise BenchError(
            f"invalid TOML: {message}",
            where=f"{path}:{line}",
            hint="fix the syntax at that line",
        ) from None


def load(path: Path | None = None) -> RunSpec:
    """The spec from ``path``, else ./bench.toml, else the packaged default."""
    if path is not None and not path.exists():
        raise BenchError(f"config file {path} does not exist", hint="check --config")
    for candidate in (path, Path("bench.toml"), DEFAULT_CONFIG):
        if candidate is not None and candidate.exists():
            return parse(read_toml(candidate), str(candidate))
    return RunSpec()


def override(spec: RunSpec, *, data_dir: Path | None = None, **changes: Any) -> RunSpec:
    """Apply CLI options (None / empty = not given) through ``RunOptions``, the schema of
    ``[run]``; ``data_dir`` goes to the chosen dataset."""
    given = {k: list(v) if isinstance(v, tuple) else v
             for k, v in changes.items() if v is not None and v != ()}
    current = {k: list(v) if isinstance(v, tuple) else v
               for k, v in spec.as_dict().items() if k in RunOptions.model_fields}
    checked = schemas.validate(RunOptions, {**current, **given}, "command line")
    spec = replace(spec, **{k: v for k, v in _run_values(checked).items() if k in given})
    if data_dir is not None:
        tables = {**spec.dataset_tables}
        tables[spec.dataset] = {**spec.dataset_options, "data_dir": str(data_dir)}
        spec = replace(spec, dataset_tables=tables)
    return spec


def with_generator_options(spec: RunSpec, settings: Mapping[str, Any]) -> RunSpec:
    """Give the grid's generators the CLI settings (None = not given) that their schema
    declares (all of them to a generator without a schema); a setting that no generator of
    the grid takes is an error, not a silent no-op."""
    from bench.core import registry

    given = {k: v for k, v in settings.items() if v is not None}
    if not given:
        return spec
    tables = {name: dict(opts) for name, opts in spec.generator_options.items()}
    taken: set[str] = set()
    for model in spec.models:
        if model == NO_MODEL:
            continue
        schema = schemas.schema_of(registry.generators.entry(model).load())
        wanted = {k: v for k, v in given.items() if schema is None or k in schema.model_fields}
        taken |= set(wanted)
        tables[model] = {**tables.get(model, {}), **wanted}
    for key in sorted(set(given) - taken):
        flag = "--model-name" if key == "model" else "--" + key.replace("_", "-")
        raise BenchError(f"no model of this run takes {flag}", where=flag,
                         hint=f"models: {', '.join(spec.models)}")
    return replace(spec, generator_options=tables)


def check_entries(spec: RunSpec) -> None:
    """Fail on a typo in a name or an option before any work: every table must name a
    registered entry and hold only keys its schema declares."""
    from bench.core import registry

    schemas.check(registry.datasets.entry(spec.dataset).load(), spec.dataset_options,
                  spec.where("datasets", spec.dataset))
    schemas.check_tables(spec)
    for kind, reg, names in (("retrievers", registry.retrievers, spec.retrievers),
                             ("generators", registry.generators, spec.models)):
        for name in names:
            if name != NO_MODEL:
                schemas.check(reg.entry(name).load(), spec.table(kind, name),
                              spec.where(kind, name))
