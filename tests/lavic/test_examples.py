"""Stage-2 examples: one ground truth among k candidates, reproducible, input untouched; the
validation lists as the test shows them."""

from __future__ import annotations

import copy

import pytest

from bench.core.errors import BenchError
from bench.task.data.schema import Answer, Catalog, Conversation, Item, Split
from bench.task.prompt import presented_order
from lavic.stage2.examples import NO_CANDIDATES, UNKNOWN_TARGET, as_tested, finetune_examples

ITEMS = [f"B{i:09d}" for i in range(40)]


def split(truths: dict[str, tuple[str, ...]]) -> Split:
    return Split(
        dataset="t", domain="d", split="train",
        conversations=[Conversation(id=c, context=f"ctx {c}") for c in truths],
        answers={c: Answer(gt_items=g) for c, g in truths.items()},
        catalog=Catalog({a: Item(asin=a, title=f"title {a}") for a in ITEMS}),
        content_hash="x")


RETRIEVED = {"hit": ITEMS[:10], "miss": ITEMS[10:20], "multi": ITEMS[20:30]}
TRUTHS = {"hit": (ITEMS[3],), "miss": (ITEMS[35],), "multi": (ITEMS[21], ITEMS[25], ITEMS[39])}


def test_exactly_one_ground_truth_among_k() -> None:
    examples = finetune_examples(split(TRUTHS), RETRIEVED, seed=1)
    assert [(e.conversation.id, e.target) for e in examples] == [
        ("hit", ITEMS[3]), ("miss", ITEMS[35]),
        ("multi", ITEMS[21]), ("multi", ITEMS[25]), ("multi", ITEMS[39])]
    for e in examples:
        assert len(e.asins) == 10 == len(set(e.asins))
        assert set(e.asins) & set(TRUTHS[e.conversation.id]) == {e.target}
        # one example type: the conversation and the catalog's items, ready for a prompt
        assert e.conversation.context == f"ctx {e.conversation.id}"
        assert [i.title for i in e.candidates] == [f"title {a}" for a in e.asins]


def test_retrieved_negatives_are_kept_and_a_miss_swaps_one_out() -> None:
    hit, miss, *multi = finetune_examples(split(TRUTHS), RETRIEVED, seed=1)
    assert set(hit.asins) == set(ITEMS[:10])
    assert len(set(miss.asins) & set(ITEMS[10:20])) == 9
    # "multi": the other retrieved ground truth (25) became a catalog negative
    first, _, missed = multi
    assert ITEMS[25] not in first.asins
    assert len(set(first.asins) & set(ITEMS[20:30])) == 9
    # target 39 was missed: 21 and 25 gave way, and 39 took one of the two places
    assert len(set(missed.asins) & set(ITEMS[20:30])) == 8
    assert len(set(missed.asins) - set(ITEMS[20:30]) - {ITEMS[39]}) == 1


def test_seeded_shuffle_and_no_mutation() -> None:
    data, retrieved = split(TRUTHS), copy.deepcopy(RETRIEVED)
    before = copy.deepcopy((data.conversations, data.answers))
    one = finetune_examples(data, retrieved, seed=1)
    assert one == finetune_examples(data, retrieved, seed=1)
    other = finetune_examples(data, retrieved, seed=2)
    assert [e.asins for e in one] != [e.asins for e in other]
    assert set(one[0].asins) == set(other[0].asins)  # same items, new order
    assert retrieved == RETRIEVED and (data.conversations, data.answers) == before
    # an example does not depend on which others are built
    alone = finetune_examples(split({"miss": TRUTHS["miss"]}), retrieved, seed=1)
    assert alone == [one[1]]
    assert [e.asins.index(e.target) for e in one] != [9] * len(one)


def test_skips_are_counted() -> None:
    data = split({"hit": TRUTHS["hit"], "none": (ITEMS[1],), "odd": ("B999999999", ITEMS[2])})
    examples = finetune_examples(data, {**RETRIEVED, "odd": ITEMS[:10]})
    assert [(e.conversation.id, e.target) for e in examples] == [("hit", ITEMS[3]),
                                                                  ("odd", ITEMS[2])]
    assert data.warnings.as_dict() == {NO_CANDIDATES: 1, UNKNOWN_TARGET: 1}


def test_a_catalog_too_small_is_one_line() -> None:
    with pytest.raises(BenchError, match="too few items"):
        finetune_examples(split(TRUTHS), RETRIEVED, k=40)


def test_tested_examples_are_the_lists_as_bench_run_shows_them() -> None:
    truths = {**TRUTHS, "twice": (ITEMS[2], ITEMS[2]), "none": (ITEMS[1],)}
    data = split(truths)
    retrieved = {**RETRIEVED, "twice": ITEMS[:12]}
    tested = as_tested(data, retrieved, k=10)
    assert [(e.conversation.id, e.truths) for e in tested] == list(truths.items())
    by_id = {e.conversation.id: e for e in tested}
    for name in ("hit", "miss", "multi", "twice"):  # top 10 as shipped, nothing swapped in
        assert sorted(by_id[name].asins) == sorted(retrieved[name][:10])
        assert list(by_id[name].asins) == presented_order(retrieved[name][:10], 0, name,
                                                               keep=False)
    assert ITEMS[35] not in by_id["miss"].asins  # the missed truth stays missed
    assert by_id["none"].asins == ()  # kept: its pair is a miss, and counted
    assert data.warnings.as_dict() == {NO_CANDIDATES: 1}
    assert retrieved["twice"] == ITEMS[:12]
