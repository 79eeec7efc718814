"""Data parallelism's one collective: every rank's finished records, gathered at rank 0.

Launchers (``torchrun``, ``accelerate launch``) set ``RANK`` / ``WORLD_SIZE`` and a rendezvous
(``MASTER_ADDR`` / ``MASTER_PORT``). The gather runs over a gloo group -- the default group when
nothing else started one, or a gloo group beside an NCCL one -- so it needs no GPU and no shared
disk, and rank 0 continues the moment the last rank is done instead of polling shard files.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch.distributed as dist

from bench.errors import BenchError

_group: Any = None


def connect(timeout_s: float) -> Any:
    """The gloo process group, started from the launcher's environment on first use (a grid
    calls it before any work, so a missing rendezvous fails at once)."""
    global _group
    if _group is not None:
        return _group
    timeout = timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        try:
            dist.init_process_group("gloo", timeout=timeout)
        except (ValueError, RuntimeError) as exc:
            raise BenchError(
                f"RANK/WORLD_SIZE are set but torch.distributed cannot start: {exc}",
                hint="start the ranks with torchrun or accelerate launch, which set "
                "MASTER_ADDR/MASTER_PORT",
            ) from exc
    _group = (dist.group.WORLD if dist.get_backend() == "gloo"
              else dist.new_group(backend="gloo", timeout=timeout))
    return _group


def gather(obj: Any, timeout_s: float) -> list[Any] | None:
    """``obj`` from every rank, in rank order, at rank 0; None on the other ranks. A
    collective: every rank calls it, for the same cells in the same order."""
    group = connect(timeout_s)
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0, group=group)
    return out
