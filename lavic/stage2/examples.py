"""Stage 2's examples, one type for training and validation: a conversation, the candidates
shown for it and the ground truths HR@1 counts.

Training (:func:`finetune_examples`): one example per (conversation, ground truth), exactly one
ground truth among ``k`` candidates. The retriever's top ``k`` are kept where possible; other
ground truths of the same conversation are replaced by negatives drawn from the domain's
catalog, and a target the retriever missed is swapped in for one of its negatives. The order is
shuffled. Every random choice comes from a generator seeded by (seed, conversation, target), so
an example never depends on which other examples exist or in what order they are built, and the
input data is never modified (the authors' code overwrites the shared candidate list in place,
so later epochs see earlier swaps).

Validation as the test runs (:func:`as_tested`): one example per conversation with the
retriever's list as it is. :func:`load_examples` reads both from a dataset folder and the
candidate lists the release ships (``candidates_st``, the paper's SBERT lists, by default);
several domains make one combined training set (the paper's Table 8 "combined" model).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.core.config import RunSpec
from bench.core.errors import BenchError, Warnings
from bench.task.data.release import ReleaseDataset
from bench.task.data.schema import Conversation, Item, Split
from bench.task.prompt import presented_order

NO_CANDIDATES = "finetune_no_candidates"
UNKNOWN_TARGET = "finetune_gt_not_in_catalog"


@dataclass(frozen=True)
class RecExample:
    """A conversation, the candidates shown for it (in that order) and its ground truths."""

    conversation: Conversation
    candidates: tuple[Item, ...]
    truths: tuple[str, ...]  # training: the one target; tested: every ground truth, as written

    @property
    def target(self) -> str:
        """The answer a training example teaches (its only truth)."""
        return self.truths[0]

    @property
    def asins(self) -> tuple[str, ...]:
        return tuple(item.asin for item in self.candidates)


def _shown(split: Split, conversation: Conversation, asins: Sequence[str],
           truths: Sequence[str]) -> RecExample:
    """An example whose candidates are the catalog's items (a title-less item when unknown)."""
    items = tuple(split.catalog.get(a) or Item(asin=a, title="") for a in asins)
    return RecExample(conversation, items, tuple(truths))


def _negatives(rng: random.Random, pool: Sequence[str], exclude: set[str], n: int) -> list[str]:
    """``n`` distinct catalog items outside ``exclude``, by rejection (the pool is large)."""
    if len(set(pool) - exclude) < n:
        raise BenchError(f"the catalog has too few items to fill {n} negative candidates",
                         where="lavic finetune", hint="use a smaller number of candidates")
    picked: list[str] = []
    while len(picked) < n:
        item = pool[rng.randrange(len(pool))]
        if item not in exclude:
            exclude = exclude | {item}
            picked.append(item)
    return picked


def candidates_for(conversation_id: str, target: str, ground_truths: set[str],
                   retrieved: Sequence[str], pool: Sequence[str], *, k: int, seed: int
                   ) -> list[str]:
    """The candidates (ASINs, in the order shown) for one (conversation, target) pair."""
    rng = random.Random(f"{seed}\x00{conversation_id}\x00{target}")
    negatives = [c for c in dict.fromkeys(retrieved[:k]) if c not in ground_truths]
    if len(negatives) > k - 1:  # the target was missed: it replaces one retrieved negative
        negatives.pop(rng.randrange(len(negatives)))
    negatives += _negatives(rng, pool, ground_truths | set(negatives), k - 1 - len(negatives))
    candidates = [*negatives, target]
    rng.shuffle(candidates)
    return candidates


def finetune_examples(split: Split, retrieved: Mapping[str, Sequence[str]], *, k: int = 10,
                      seed: int = 0) -> list[RecExample]:
    """All training examples of ``split``; a conversation without candidates or a ground truth
    outside the catalog is skipped with a counted warning in ``split.warnings``."""
    if k < 1:
        raise BenchError(f"candidates = {k}", where="lavic finetune", hint="use 1 or more")
    pool = list(split.catalog.items)
    examples = []
    for conversation in split.conversations:
        ranked = retrieved.get(conversation.id)
        if not ranked:
            split.warnings.add(NO_CANDIDATES, "no candidate list; skipped",
                               where=conversation.id)
            continue
        truths = split.answers[conversation.id].gt_items
        for target in truths:
            if split.catalog.get(target) is None:
                split.warnings.add(UNKNOWN_TARGET, f"ground truth {target} is not in the "
                                   "catalog; skipped", where=conversation.id)
                continue
            shown = candidates_for(conversation.id, target, set(truths), ranked, pool, k=k,
                                   seed=seed)
            examples.append(_shown(split, conversation, shown, (target,)))
    return examples


def as_tested(split: Split, retrieved: Mapping[str, Sequence[str]], *, k: int = 10
              ) -> list[RecExample]:
    """One example per conversation as ``bench run`` (default seed) shows it: the retriever's
    top ``k`` as they come, no ground truth inserted, in the harness's displayed order; every
    ground truth stays a pair, so one outside the list is a miss. A conversation without a
    list is kept (its pairs are misses) with a counted warning."""
    run = RunSpec()
    examples = []
    for conversation in split.conversations:
        ranked = list(retrieved.get(conversation.id) or ())[:k]
        if not ranked:
            split.warnings.add(NO_CANDIDATES, "no candidate list; its pairs count as misses",
                               where=conversation.id)
        shown = presented_order(ranked, run.seed, conversation.id, run.keep_order)
        examples.append(_shown(split, conversation, shown,
                               split.answers[conversation.id].gt_items))
    return examples


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


def load_examples(data_dir: Path, domains: Sequence[str], *, shipped: str = "st",
                  k: int = 10, seed: int = 0, limit: int | None = None,
                  validation: str = "generate", warnings: Warnings
                  ) -> tuple[list[RecExample], list[RecExample]]:
    """(train, valid) examples of ``domains``: the valid split as tested for ``generate``
    validation, with the ground truth inserted for ``score``; ``limit``: the first N
    conversations of each split and domain (smoke runs)."""
    if not domains:
        raise BenchError("no domain given", where="bench lavic finetune",
                         hint="pass --domain NAME (repeat it for one combined model)")
    data = ReleaseDataset(data_dir)
    train: list[RecExample] = []
    valid: list[RecExample] = []
    for domain in domains:
        for name in ("train", "valid"):
            split = data.load(domain, name, warnings=warnings)
            split = replace(split, conversations=split.conversations[:limit])
            ranked = shipped_lists(split, shipped, data.split_path(domain, name))
            if name == "train":
                train += finetune_examples(split, ranked, k=k, seed=seed)
            elif validation == "generate":
                valid += as_tested(split, ranked, k=k)
            else:
                valid += finetune_examples(split, ranked, k=k, seed=seed)
    return train, valid
