"""Data parallelism's one collective: every rank's finished records, gathered at rank 0.

Launchers (``torchrun``, ``accelerate launch``) set ``RANK`` / ``WORLD_SIZE`` and a rendezvous
(``MASTER_ADDR`` / ``MASTER_PORT``). The gather runs over a gloo group -- the default group when
nothing else started one, or a gloo group beside an NCCL one -- so it needs no GPU and no shared
disk, and rank 0 continues the moment the last rank is done instead of polling shard files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from bench.core.env import rank_and_size
from bench.core.errors import BenchError

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


def gather_records(done: dict[str, dict[str, Any]], mine: Sequence[str], every: Sequence[str],
                   where: str, timeout_s: float) -> None:
    """Rank 0 receives every rank's records of a cell into ``done`` (id -> record) the moment
    the last rank is done (no shard-file polling, no shared disk needed); a conversation of
    ``every`` still missing then is an error, not a wait. ``mine``: this rank's ids."""
    rank, size = rank_and_size()
    if size > 1:
        shards = gather([done[i] for i in mine if i in done], timeout_s)
        for record in (r for shard in shards or () for r in shard):
            done[record["id"]] = record
    if rank != 0:
        return
    missing = [i for i in every if i not in done]
    if missing:
        raise BenchError(
            f"{len(missing)} conversations never arrived from the other ranks "
            f"(first: {missing[0]})",
            where=where,
            hint="their shards are kept; re-run to finish them",
        )
