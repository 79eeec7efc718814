"""Dataset factories: options from ``[datasets.NAME]`` in bench.toml or ``--data-dir``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.data.release import ReleaseDataset
from bench.errors import BenchError

_RELEASE_KEYS = {"data_dir", "images_dir", "fix_mojibake"}
_SYNTHETIC_KEYS = _RELEASE_KEYS | {"size", "seed"}


def _check_keys(options: Mapping[str, Any], allowed: set[str], name: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise BenchError(
            f"unknown option {unknown[0]!r} for dataset {name}",
            where=f"bench.toml [datasets.{name}]",
            hint=f"known: {', '.join(sorted(allowed))}",
        )


def build_release(options: Mapping[str, Any]) -> ReleaseDataset:
    _check_keys(options, _RELEASE_KEYS, "reddit-amazon")
    data_dir = options.get("data_dir")
    if not data_dir:
        raise BenchError(
            "the reddit-amazon dataset needs a data directory",
            hint="pass --data-dir DIR (the release's data/ folder) or set "
            "[datasets.reddit-amazon] data_dir",
        )
    return ReleaseDataset(
        Path(data_dir),
        name="reddit-amazon",
        images_dir=options.get("images_dir"),
        fix_mojibake=bool(options.get("fix_mojibake", False)),
    )


def build_synthetic(options: Mapping[str, Any]) -> ReleaseDataset:
    """The embedded default: generated once per (size, seed) into the cache, then reused."""
    _check_keys(options, _SYNTHETIC_KEYS, "synthetic")
    from bench.data.synthetic import ensure_synthetic

    root = options.get("data_dir") or ensure_synthetic(
        seed=int(options.get("seed", 0)), size=str(options.get("size", "medium"))
    )
    return ReleaseDataset(
        Path(root),
        name="synthetic",
        images_dir=options.get("images_dir"),
        fix_mojibake=bool(options.get("fix_mojibake", False)),
    )
