"""Stage 2's examples from a dataset folder: the ``train`` split to learn from and the
``valid`` split to pick the epoch by HR@1, each conversation with a candidate list the release
ships (``candidates_st``, the paper's SBERT lists, by default). Validation takes the lists as
the test does (``generate``) or with the ground truth inserted (``score``). Several domains
make one combined training set (the paper's Table 8 "combined" model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.core.errors import BenchError, Warnings
from bench.task.data.release import ReleaseDataset
from bench.task.data.schema import Split
from lavic.finetune import RecSample, Validation, samples, samples_as_tested


def shipped_lists(split: Split, shipped: str, path: Path) -> dict[str, list[str]]:
    """Each conversation's ``candidates_{shipped}`` list; a name the split never ships is
    one line naming the file and the lists it has."""
    if split.conversations and not any(shipped in c.shipped_candidates
                                       for c in split.conversations):
        found = sorted({name for c in split.conversations for name in c.shipped_candidates})
        raise BenchError(
            f"no candidates_{shipped} lists", where=str(path),
            hint=f"it has {', '.join(f'candidates_{n}' for n in found) or 'none'}; pass "
            f"--candidate-lists {found[0] if found else 'NAME'}")
    return {c.id: list(c.shipped_candidates.get(shipped, ())) for c in split.conversations}


def load_samples(data_dir: Path, domains: Sequence[str], *, shipped: str = "st", k: int = 10,
                 seed: int = 0, limit: int | None = None, validation: Validation = "generate",
                 warnings: Warnings) -> tuple[list[RecSample], list[RecSample]]:
    """(train, valid) examples of ``domains``; ``limit``: the first N conversations of each
    split and domain (smoke runs)."""
    if not domains:
        raise BenchError("no domain given", where="bench lavic finetune",
                         hint="pass --domain NAME (repeat it for one combined model)")
    data = ReleaseDataset(data_dir)
    train: list[RecSample] = []
    valid: list[RecSample] = []
    for domain in domains:
        for name in ("train", "valid"):
            split = data.load(domain, name, warnings=warnings)
            split = replace(split, conversations=split.conversations[:limit])
            ranked = shipped_lists(split, shipped, data.split_path(domain, name))
            if name == "train":
                train += samples(split, ranked, k=k, seed=seed)
            elif validation == "generate":
                valid += samples_as_tested(split, ranked, k=k)
            else:
                valid += samples(split, ranked, k=k, seed=seed)
    return train, valid
