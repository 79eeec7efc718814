"""What a registry factory receives when it builds a retriever or generator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.models import ModelPaths, cache_root


@dataclass(frozen=True)
class BuildContext:
    """Options come from bench.toml (``[retrievers.NAME]`` / ``[generators.NAME]``) and the CLI."""

    options: Mapping[str, Any] = field(default_factory=dict)
    models: ModelPaths = field(default_factory=ModelPaths)
    cache_dir: Path = field(default_factory=cache_root)
    seed: int = 0

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)
