"""The paper's recommendation prompt (its Table 11), text-only and title + image.

Protocol, not a backend detail: every generator and LaViC's training render requests here, so
they all see the same words. The wording follows the authors' code where it differs from the
printed Table 11 (README "The prompt" lists each difference). Only the conversation is ever
truncated -- oldest text first, to the model's token budget -- so the instruction, all
candidates and the answer cue always survive. Images are marked in the text by ``IMAGE_SLOT``;
each backend turns a slot into its own image token(s) or content part, in candidate order.
The candidates' order is part of the protocol too (``presented_order``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.task.data.schema import Item

IMAGE_SLOT = "<image>"
MISSING_TITLE = "No Title"  # what the authors' code shows for an item without metadata
#: The authors' stand-in for a candidate without an image file: a white 336 x 336 square.
MISSING_IMAGE_SIDE = 336
MISSING_IMAGE_RGB = (255, 255, 255)
#: The authors' code ends its raw-text prompt with this cue; chat-template backends let the
#: template's assistant turn be the cue instead (``render(..., cue=False)``).
ANSWER_CUE = "\n\nAssistant:"


def presented_order(candidates: Sequence[str], seed: int, conv_id: str, keep: bool,
                    salt: str = "") -> list[str]:
    """The order shown to a generator: a shuffle seeded by (run seed, conversation id), so it
    does not depend on batch size, on resume, or on which other conversations are run; a
    ``salt`` gives another order of the same seed (``bench run --permutations``)."""
    order = list(candidates)
    if not keep:
        random.Random(f"{seed}:{conv_id}" + (f":{salt}" if salt else "")).shuffle(order)
    return order

_INTRO = (
    "You are an AI assistant specialized in providing personalized product recommendations "
    "based on user conversations. You are given a conversation between a user seeking "
    "recommendation (denoted by <submission>) and other users providing comments (denoted by "
    "<comment>). "
)
_TEXT_ONLY = 'You are also given a set of candidate products with their IDs and titles ' \
    'formatted as "ID: title". '
_WITH_IMAGES = 'You are also given a set of candidate products with their IDs, titles and ' \
    'images formatted as "ID: title" followed by an image. '
_ASK = (
    "Among the candidates, recommend the most relevant product to the seeker. "
    "Only reply with its ID, and don't say anything else."
)


def instruction(with_images: bool) -> str:
    return _INTRO + (_WITH_IMAGES if with_images else _TEXT_ONLY) + _ASK


@dataclass(frozen=True)
class Prompt:
    """The user turn of the prompt, and the images its slots stand for (in order).

    ``over_budget``: no conversation survived the cut (or even none does not fit), so the
    request is not worth asking -- a failure, not an answer."""

    text: str
    images: tuple[Path | None, ...]
    truncated: bool
    over_budget: bool = False


def candidate_block(items: Sequence[Item], with_images: bool) -> str:
    lines = []
    for item in items:
        lines.append(f"{item.asin}: {item.title or MISSING_TITLE}")
        if with_images:
            lines.append(IMAGE_SLOT)
    return "\n".join(lines)


def render(conversation: str, items: Sequence[Item], with_images: bool, *,
           cue: bool = False) -> str:
    text = (
        f"{instruction(with_images)}\n\nConversation:\n{conversation.strip()}\n\n"
        f"Candidates:\n{candidate_block(items, with_images)}"
    )
    return text + ANSWER_CUE if cue else text


def build(
    conversation: str,
    items: Sequence[Item],
    *,
    with_images: bool,
    count_tokens: Callable[[str], int] | None = None,
    budget: int | None = None,
    cue: bool = False,
) -> Prompt:
    """The prompt; when ``count_tokens(text)`` of the rendered prompt exceeds ``budget``,
    the conversation loses its oldest characters until it fits (binary search on the cut)."""
    images = tuple(i.image_path for i in items) if with_images else ()

    def text_of(kept: str) -> str:
        return render(kept, items, with_images, cue=cue)

    text = text_of(conversation)
    if count_tokens is None or budget is None or count_tokens(text) <= budget:
        return Prompt(text, images, truncated=False)
    lo, hi = 0, len(conversation)  # smallest cut that fits lies in (lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if count_tokens(text_of(conversation[mid:])) <= budget:
            hi = mid
        else:
            lo = mid + 1
    kept = conversation[lo:]
    over = not kept.strip() or count_tokens(text_of(kept)) > budget
    return Prompt(text_of(kept), images, truncated=True, over_budget=over)
