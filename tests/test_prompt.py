"""The paper's prompt, pinned by snapshots; truncation; the ID parser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from baselines.generators import prompt
from baselines.generators.parse import NO_ID, OUTSIDE, SEVERAL, parse_choice
from bench.data.schema import Item

SNAPSHOTS = Path(__file__).parent / "snapshots"
ITEMS = [Item(f"B00000000{i}", f"Item number {i}", image_path=Path(f"/x/{i}.jpg"))
         for i in range(10)]
ITEMS[3] = Item("0123456789", "")  # an ISBN-like ASIN without metadata
CONVERSATION = ("<submission>Need a teal mug with dots</submission>\n"
                "<comment>Have you tried the ceramic ones?</comment>\n")


@pytest.mark.parametrize("with_images", [False, True])
def test_prompt_matches_snapshot(with_images: bool) -> None:
    text = prompt.build(CONVERSATION, ITEMS, with_images=with_images).text
    snap = SNAPSHOTS / f"prompt_{'title_image' if with_images else 'title'}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snap.write_text(text, encoding="utf-8")
    assert text == snap.read_text(encoding="utf-8")


def test_image_slots_follow_each_candidate_line() -> None:
    p = prompt.build(CONVERSATION, ITEMS, with_images=True)
    assert p.text.count(prompt.IMAGE_SLOT) == 10 == len(p.images)
    lines = p.text.split("Candidates:\n")[1].splitlines()
    assert lines[0::2] == [f"{i.asin}: {i.title or prompt.MISSING_TITLE}" for i in ITEMS]
    assert set(lines[1::2]) == {prompt.IMAGE_SLOT}


def test_only_the_oldest_conversation_text_is_cut() -> None:
    words = len  # one "token" per character keeps the arithmetic visible
    long_conv = "<submission>" + "old " * 500 + "</submission>\n<comment>newest words</comment>"
    full = prompt.build(long_conv, ITEMS, with_images=False)
    budget = len(full.text) - 1000
    cut = prompt.build(long_conv, ITEMS, with_images=False, count_tokens=words, budget=budget)
    assert cut.truncated and not full.truncated
    assert len(cut.text) <= budget
    assert cut.text.startswith(prompt.instruction(False))
    assert cut.text.endswith(prompt.candidate_block(ITEMS, False))
    assert "<comment>newest words</comment>" in cut.text
    # the cut is the smallest that fits: one character more would not
    assert len(cut.text) >= budget - 1


def test_parser_classifies_failures() -> None:
    ids = [i.asin for i in ITEMS]
    assert parse_choice("B000000002", ids).item_id == "B000000002"
    assert parse_choice("The answer is b000000002.", ids).item_id == "B000000002"
    assert parse_choice("0123456789", ids).item_id == "0123456789"  # starts with a digit
    assert parse_choice("I recommend the teal one", ids).failure == NO_ID
    assert parse_choice("specialized recommendation", ids).failure == NO_ID  # 10-letter words
    assert parse_choice("B0ZZZZZZZ9", ids).failure == OUTSIDE
    both = parse_choice("B000000002 or B000000005", ids)
    assert (both.item_id, both.failure) == ("B000000002", SEVERAL)
    assert parse_choice("B000000002, yes B000000002", ids).failure is None
