"""The description prompt (the paper's Table 10) and how it becomes token ids.

The same prompt serves the full-token description run and stage-1 distillation; only what
fills ``{image}`` differs (LLaVA's any-resolution image tokens, or ``views`` placeholders).
"""

from __future__ import annotations

from typing import Any

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


def render(tokenizer: Any, text: str) -> tuple[str, bool]:
    """A user turn ready for the answer, and whether tokenising it must add special tokens:
    through the tokenizer's chat template when it has one (which adds BOS itself), else the
    plain text."""
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
        return rendered, False
    return text, True


def prompt_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of :func:`render`'s user turn."""
    rendered, special = render(tokenizer, text)
    return list(tokenizer(rendered, add_special_tokens=special)["input_ids"])
