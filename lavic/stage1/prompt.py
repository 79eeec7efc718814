"""The description prompt, the paper's Table 10.

The same prompt serves the full-token description run (:mod:`lavic.stage1.describe`) and
stage-1 distillation (:mod:`lavic.stage1.distill`); only what fills ``{image}`` differs
(LLaVA's any-resolution image tokens, or ``views`` placeholders). Both render and tokenise it
as every local prompt is (:class:`baselines.generators.chat.ChatTurn`).
"""

from __future__ import annotations

# Table 10, with ASCII apostrophes (the authors' code uses them too).
DESCRIBE_PROMPT = (
    "You are a helpful AI assistant. Given an Amazon product's title and its image, please "
    "provide a detailed, visually grounded description of the product that would help someone "
    "decide whether to purchase it. Please focus on the product's appearance, features, and any "
    "other visually informative aspects. Do not mention the product's title in your answer.\n\n"
    "This product's title is: {title}\n{image}"
)


def describe_prompt(title: str, image: str) -> str:
    """Table 10 for one item; ``image`` is whatever stands for its image in the text."""
    return DESCRIBE_PROMPT.format(title=title, image=image)

