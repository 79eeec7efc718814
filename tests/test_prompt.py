"""The Table 11 prompt, tied to the authors' own prompt text; truncation of the conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.task import prompt
from bench.task.data.schema import Item

# The authors' instruction, quoted from their code (jeon185/LaViC, src/prompt_tuning.py,
# build_prompt). Their code only has the title + image version; it lays a prompt out as
# instruction, "\n\nConversation:\n", the conversation, "\n\nCandidates:\n", one
# "ID: title\n" line per candidate followed by its image tokens and "\n", then "\nAssistant:".
AUTHORS_INSTRUCTION = (
    "You are an AI assistant specialized in providing personalized product recommendations "
    "based on user conversations. You are given a conversation between a user seeking "
    "recommendation (denoted by <submission>) and other users providing comments (denoted by "
    "<comment>). You are also given a set of candidate products with their IDs, titles and "
    "images formatted as \"ID: title\" followed by an image. Among the candidates, recommend "
    "the most relevant product to the seeker. Only reply with its ID, and don't say anything "
    "else."
)
AUTHORS_IMAGE_TOKENS = "<ItemImageEmb1><ItemImageEmb2><ItemImageEmb3><ItemImageEmb4><ItemImageEmb5>"

ITEMS = [Item(f"B00000000{i}", f"Item number {i}", image_path=Path(f"/x/{i}.jpg"))
         for i in range(10)]
ITEMS[3] = Item("0123456789", "")  # an ISBN-like ASIN without metadata
CONVERSATION = ("<submission>Need a teal mug with dots</submission>\n"
                "<comment>Have you tried the ceramic ones?</comment>")


def authors_layout(conversation: str, candidates: list[tuple[str, str]]) -> str:
    lines = "".join(f"{cid}: {title}\n{AUTHORS_IMAGE_TOKENS}\n" for cid, title in candidates)
    return (f"{AUTHORS_INSTRUCTION}\n\nConversation:\n{conversation}\n\nCandidates:\n{lines}"
            "\nAssistant:")


def test_title_image_prompt_is_the_authors_prompt() -> None:
    ours = prompt.render(CONVERSATION, ITEMS, with_images=True, cue=True)
    expected = authors_layout(CONVERSATION, [(i.asin, i.title or "No Title") for i in ITEMS])
    assert ours.replace(prompt.IMAGE_SLOT, AUTHORS_IMAGE_TOKENS) == expected


def test_title_only_prompt_drops_exactly_the_image_phrases() -> None:
    """Table 11's grey phrases ("and images", "followed by an image") removed, nothing else."""
    text_only = (AUTHORS_INSTRUCTION.replace("IDs, titles and images", "IDs and titles")
                 .replace('"ID: title" followed by an image.', '"ID: title".'))
    assert prompt.instruction(False) == text_only
    ours = prompt.render(CONVERSATION, ITEMS, with_images=False)
    assert ours == (f"{text_only}\n\nConversation:\n{CONVERSATION}\n\nCandidates:\n"
                    + "\n".join(f"{i.asin}: {i.title or 'No Title'}" for i in ITEMS))
    assert prompt.IMAGE_SLOT not in ours and not ours.endswith(prompt.ANSWER_CUE)


def test_image_slots_follow_each_candidate_line() -> None:
    p = prompt.build(CONVERSATION, ITEMS, with_images=True)
    assert p.text.count(prompt.IMAGE_SLOT) == 10 == len(p.images)
    lines = p.text.split("Candidates:\n")[1].splitlines()
    assert lines[0::2] == [f"{i.asin}: {i.title or prompt.MISSING_TITLE}" for i in ITEMS]
    assert set(lines[1::2]) == {prompt.IMAGE_SLOT}


@pytest.mark.parametrize("cue", [False, True])
def test_only_the_oldest_conversation_text_is_cut(cue: bool) -> None:
    chars = len  # one "token" per character keeps the arithmetic visible
    long_conv = "<submission>" + "old " * 500 + "</submission>\n<comment>newest words</comment>"
    full = prompt.build(long_conv, ITEMS, with_images=False, cue=cue)
    budget = len(full.text) - 1000
    cut = prompt.build(long_conv, ITEMS, with_images=False, count_tokens=chars, budget=budget,
                       cue=cue)
    assert cut.truncated and not full.truncated and not cut.over_budget
    assert len(cut.text) <= budget
    assert cut.text.startswith(prompt.instruction(False))
    tail = prompt.candidate_block(ITEMS, False) + (prompt.ANSWER_CUE if cue else "")
    assert cut.text.endswith(tail)
    assert "<comment>newest words</comment>" in cut.text
    # the cut is the smallest that fits: one character more would not
    assert len(cut.text) >= budget - 1


def test_a_conversation_cut_to_nothing_is_over_budget() -> None:
    bare = len(prompt.render("", ITEMS, with_images=False))
    for budget in (bare, bare - 1):  # room for no conversation; not even for the bare prompt
        cut = prompt.build(CONVERSATION, ITEMS, with_images=False, count_tokens=len,
                           budget=budget)
        assert cut.truncated and cut.over_budget
    kept_one_word = prompt.build(CONVERSATION, ITEMS, with_images=False, count_tokens=len,
                                 budget=bare + len("ones?</comment>"))
    assert kept_one_word.truncated and not kept_one_word.over_budget
