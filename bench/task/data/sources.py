"""Dataset factories: options from ``[datasets.NAME]`` in bench.toml or ``--data-dir``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bench.core.errors import BenchError
from bench.core.options import Options, takes, validate
from bench.task.data.release import ReleaseDataset


class ReleaseOptions(Options):
    data_dir: str | None = Field(None, description="the release's data/ folder")
    images_dir: str | None = Field(None, description="default: data_dir/../train_images")
    fix_mojibake: bool = False


class SyntheticOptions(ReleaseOptions):
    size: Literal["small", "medium", "large"] = "medium"
    seed: int = 0


@takes(ReleaseOptions)
def build_release(options: Mapping[str, Any]) -> ReleaseDataset:
    opts = validate(ReleaseOptions, options, "[datasets.reddit-amazon]")
    if not opts.data_dir:
        raise BenchError(
            "the reddit-amazon dataset needs a data directory",
            hint="pass --data-dir DIR (the release's data/ folder) or set "
            "[datasets.reddit-amazon] data_dir",
        )
    return ReleaseDataset(Path(opts.data_dir), name="reddit-amazon",
                          images_dir=opts.images_dir, fix_mojibake=opts.fix_mojibake)


@takes(SyntheticOptions)
def build_synthetic(options: Mapping[str, Any]) -> ReleaseDataset:
    """The embedded default: generated once per (size, seed) into the cache, then reused."""
    opts = validate(SyntheticOptions, options, "[datasets.synthetic]")
    from bench.task.data.synthetic import ensure_synthetic

    root = opts.data_dir or ensure_synthetic(seed=opts.seed, size=opts.size)
    return ReleaseDataset(Path(root), name="synthetic", images_dir=opts.images_dir,
                          fix_mojibake=opts.fix_mojibake)
