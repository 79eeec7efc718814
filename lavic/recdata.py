"""Stage 2's examples from a dataset folder: the ``train`` split to learn from and the
``valid`` split to pick the epoch by HR@1, each conversation with a candidate list the release
ships (``candidates_st``, the paper's SBERT lists, by default). Several domains make one
combined training set (the paper's Table 8 "combined" model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.data.release import ReleaseDataset
from bench.errors import BenchError, Warnings
from lavic.finetune import RecSample, samples


def load_samples(data_dir: Path, domains: Sequence[str], *, shipped: str = "st", k: int = 10,
                 seed: int = 0, limit: int | None = None, warnings: Warnings
                 ) -> tuple[list[RecSample], list[RecSample]]:
    """(train, valid) examples of ``domains``; ``limit``: the first N conversations of each
    split and domain (smoke runs)."""
    if not domains:
        raise BenchError("no domain given", where="bench lavic finetune",
                         hint="pass --domain NAME (repeat it for one combined model)")
    data = ReleaseDataset(data_dir)
    train: list[RecSample] = []
    valid: list[RecSample] = []
    for domain in domains:
        for name, into in (("train", train), ("valid", valid)):
            split = data.load(domain, name, warnings=warnings)
            split = replace(split, conversations=split.conversations[:limit])
            ranked = {c.id: list(c.shipped_candidates.get(shipped, ()))
                      for c in split.conversations}
            into.extend(samples(split, ranked, k=k, seed=seed))
    return train, valid
