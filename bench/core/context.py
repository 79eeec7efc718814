"""What a registry factory receives when it builds a retriever or generator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from bench.core import options as schemas
from bench.core.env import cache_root
from bench.core.weights import ModelPaths

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class BuildContext:
    """Options come from bench.toml (``[retrievers.NAME]`` / ``[generators.NAME]``) and the CLI.

    ``where`` names their table in error messages; ``prices`` is bench.toml's ``[prices]``
    (harness-wide, so it is not one generator's option)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    models: ModelPaths = field(default_factory=ModelPaths)
    cache_dir: Path = field(default_factory=cache_root)
    seed: int = 0
    where: str | None = None  # e.g. "bench.toml [generators.vicuna]"; None: the factory's own
    prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def parse(self, schema: type[S], table: str) -> S:
        """The options checked against ``schema``; errors name ``where``, else ``table``."""
        return schemas.validate(schema, self.options, self.where or table)
