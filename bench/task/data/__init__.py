"""Datasets: the Reddit-Amazon release loader, the synthetic world, validation."""

from __future__ import annotations

from typing import Any


def register_builtin(registry: Any) -> None:
    registry.register(
        "reddit-amazon", "bench.task.data.sources:build_release",
        "the public release (--data-dir DIR)",
    )
    registry.register(
        "synthetic",
        "bench.task.data.sources:build_synthetic",
        "embedded visually-grounded world, generated from a seed (default)",
    )
