"""Stage-2 examples: for training, one per (conversation, ground truth), exactly one ground
truth among ``k`` candidates; for validation as the test runs, one per conversation with the
retriever's list as it is (:func:`as_tested`).

The retriever's top ``k`` are kept where possible. Other ground truths of the same conversation
are replaced by negatives drawn from the domain's catalog; a target the retriever missed is
swapped in for one of its negatives. The order is shuffled. Every random choice comes from a
generator seeded by (seed, conversation, target), so an example never depends on which other
examples exist or in what order they are built, and the input data is never modified (the
authors' code overwrites the shared candidate list in place, so later epochs see earlier swaps).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.core.config import RunSpec
from bench.core.errors import BenchError
from bench.task.data.schema import Split
from bench.task.prompt import presented_order

NO_CANDIDATES = "finetune_no_candidates"
UNKNOWN_TARGET = "finetune_gt_not_in_catalog"


@dataclass(frozen=True)
class RecExample:
    """Candidates shown for a conversation and the ground truths HR@1 counts against them."""

    conversation_id: str
    candidates: tuple[str, ...]  # in the order shown
    truths: tuple[str, ...]  # training: the one target; tested: every ground truth, as written

    @property
    def target(self) -> str:
        """The answer a training example teaches (its only truth)."""
        return self.truths[0]


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


def example(conversation_id: str, target: str, ground_truths: set[str],
            retrieved: Sequence[str], pool: Sequence[str], *, k: int, seed: int) -> RecExample:
    """The candidates for one (conversation, target) pair."""
    rng = random.Random(f"{seed}\x00{conversation_id}\x00{target}")
    negatives = [c for c in dict.fromkeys(retrieved[:k]) if c not in ground_truths]
    if len(negatives) > k - 1:  # the target was missed: it replaces one retrieved negative
        negatives.pop(rng.randrange(len(negatives)))
    negatives += _negatives(rng, pool, ground_truths | set(negatives), k - 1 - len(negatives))
    candidates = [*negatives, target]
    rng.shuffle(candidates)
    return RecExample(conversation_id, tuple(candidates), (target,))


def finetune_examples(split: Split, retrieved: Mapping[str, Sequence[str]], *, k: int = 10,
                      seed: int = 0) -> list[RecExample]:
    """All examples of ``split``; a conversation without candidates or a ground truth outside
    the catalog is skipped with a counted warning in ``split.warnings``."""
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
            examples.append(example(conversation.id, target, set(truths), ranked, pool,
                                    k=k, seed=seed))
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
        examples.append(RecExample(conversation.id, tuple(shown),
                                   tuple(split.answers[conversation.id].gt_items)))
    return examples
