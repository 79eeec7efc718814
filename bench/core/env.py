"""What the process environment decides: where caches live and which data-parallel rank this is.

``$BENCH_CACHE_DIR`` (default ``~/.cache/lavic-bench``) holds every cache (embeddings, answers,
the synthetic world, weight fingerprints). Launchers (``torchrun``, ``accelerate launch``) set
``RANK`` / ``WORLD_SIZE``; without them a process is rank 0 of 1.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$BENCH_CACHE_DIR`` or ``~/.cache/lavic-bench``."""
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "lavic-bench"))


def rank_and_size() -> tuple[int, int]:
    """(this process's rank, number of ranks) as the launcher set them; (0, 1) otherwise."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
