"""bench.toml -> a frozen, hashable run spec (HELM-style: every cell's inputs are explicit).

Precedence: CLI options > ``--config FILE`` (or ./bench.toml) > the default grid that ships
inside the package (``bench/defaults/bench.toml``), so an installed wheel runs from any folder.
Unknown keys and wrong types are errors that name the file and key, never ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.models import ModelPaths

DEFAULT_CONFIG = Path(__file__).resolve().parent / "defaults" / "bench.toml"
_RUN_KEYS: dict[str, type | tuple[type, ...]] = {
    "dataset": str,
    "domains": list,
    "split": str,
    "retrievers": list,
    "models": list,
    "top_k": int,
    "seed": int,
    "limit": (int, type(None)),
    "out": str,
    "keep_order": bool,
    "batch_size": int,
    "strict": bool,
}
_TOP_KEYS = {"run", "datasets", "models", "retrievers", "generators", "prices"}


@dataclass(frozen=True)
class RunSpec:
    dataset: str = "synthetic"
    domains: tuple[str, ...] = ()  # empty = every domain the dataset has
    split: str = "test"
    retrievers: tuple[str, ...] = ("bm25",)
    models: tuple[str, ...] = ("none",)
    top_k: int = 10
    seed: int = 0
    limit: int | None = None
    out: str = "runs/default"
    keep_order: bool = False
    batch_size: int = 8
    strict: bool = False
    dataset_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    retriever_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    generator_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    model_paths: Mapping[str, str] = field(default_factory=dict)
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    source: str = "defaults"

    @property
    def dataset_options(self) -> dict[str, Any]:
        return dict(self.dataset_tables.get(self.dataset, {}))

    @property
    def models_table(self) -> ModelPaths:
        return ModelPaths(dict(self.model_paths))

    def cell_spec(self, domain: str, retriever: str, model: str) -> dict[str, Any]:
        """Everything that can change one cell's predictions -- and nothing else."""
        return {
            "dataset": self.dataset,
            "dataset_options": self.dataset_options,
            "domain": domain,
            "split": self.split,
            "retriever": retriever,
            "retriever_options": dict(self.retriever_options.get(retriever, {})),
            "model": model,
            "generator_options": dict(self.generator_options.get(model, {})),
            "top_k": self.top_k,
            "seed": self.seed,
            "limit": self.limit,
            "keep_order": self.keep_order,
        }

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def spec_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _check_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BenchError("expected a table", where=where)
    return value


def _nested(raw: dict[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    table = _check_table(raw.get(key, {}), f"{where} [{key}]")
    return {name: _check_table(v, f"{where} [{key}.{name}]") for name, v in table.items()}


def parse(raw: dict[str, Any], where: str) -> RunSpec:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise BenchError(
            f"unknown table {unknown[0]!r}",
            where=where,
            hint=f"known: {', '.join(sorted(_TOP_KEYS))}",
        )
    run = _check_table(raw.get("run", {}), f"{where} [run]")
    values: dict[str, Any] = {}
    for key, value in run.items():
        if key not in _RUN_KEYS:
            raise BenchError(
                f"unknown key run.{key}", where=where, hint=f"known: {', '.join(sorted(_RUN_KEYS))}"
            )
        expected = _RUN_KEYS[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is int):
            raise BenchError(f"run.{key} has the wrong type ({type(value).__name__})", where=where)
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise BenchError(f"run.{key} must be a list of strings", where=where)
            value = tuple(value)
        values[key] = value
    if values.get("top_k", 10) < 1:
        raise BenchError("run.top_k must be >= 1", where=where)
    models = _check_table(raw.get("models", {}), f"{where} [models]")
    if not all(isinstance(v, str) for v in models.values()):
        raise BenchError("[models] values must be paths (strings)", where=where)
    return RunSpec(
        **values,
        dataset_tables=_nested(raw, "datasets", where),
        retriever_options=_nested(raw, "retrievers", where),
        generator_options=_nested(raw, "generators", where),
        model_paths=models,
        prices=_nested(raw, "prices", where),
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
    """Apply CLI options (None / empty = not given); ``data_dir`` goes to the chosen dataset."""
    given = {k: v for k, v in changes.items() if v is not None and v != ()}
    spec = replace(spec, **given)
    if data_dir is not None:
        tables = {**spec.dataset_tables}
        tables[spec.dataset] = {**spec.dataset_options, "data_dir": str(data_dir)}
        spec = replace(spec, dataset_tables=tables)
    return spec


def with_generator_options(spec: RunSpec, settings: Mapping[str, Any]) -> RunSpec:
    """Give every generator of the grid the given CLI settings (None = not given)."""
    given = {k: v for k, v in settings.items() if v is not None}
    if not given:
        return spec
    tables = {name: dict(opts) for name, opts in spec.generator_options.items()}
    for model in spec.models:
        if model != "none":
            tables[model] = {**tables.get(model, {}), **given}
    return replace(spec, generator_options=tables)
