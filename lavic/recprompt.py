"""The recommendation prompt as token ids, one implementation for training and inference.

The words are the harness's own (``bench.task.prompt``, the paper's Table 11): each candidate is
``ID: title`` followed by its image slot, which becomes ``views`` placeholder tokens (the
model's ``<image>`` token) per image. Stage 2 trains on exactly the ids the ``lavic`` generator
later feeds (the generator's rendering hooks delegate here), and only the conversation is cut,
oldest text first, so that prompt plus answer fit the input limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.core.errors import BenchError
from bench.task import prompt as table11
from bench.task.data.schema import Item


@dataclass(frozen=True)
class RecPrompt:
    """Renders and tokenises the Table 11 prompt for one tokenizer and view setting."""

    tokenizer: Any
    placeholder: str  # the token a view embedding replaces
    slots: int  # placeholders per image (0: titles only)
    max_length: int

    @property
    def with_images(self) -> bool:
        return self.slots > 0

    def sanitize(self, text: str) -> str:
        """A literal slot or placeholder in a conversation or title would claim a view."""
        for token in dict.fromkeys((table11.IMAGE_SLOT, self.placeholder)):
            text = text.replace(token, f"[{token.strip('<>')}]")
        return text

    def format_slots(self, text: str) -> str:
        return text.replace(table11.IMAGE_SLOT, self.placeholder * self.slots)

    def chat(self, text: str) -> str:
        """The user turn through the tokenizer's chat template, or as it is without one."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True))
        return text

    def add_special_tokens(self, chat_text: str) -> bool:
        """BOS from the tokenizer unless the chat template already wrote it."""
        bos = self.tokenizer.bos_token
        return not (bos and chat_text.startswith(bos))

    def ids(self, chat_text: str) -> list[int]:
        encoded = self.tokenizer(chat_text, add_special_tokens=self.add_special_tokens(chat_text))
        return list(encoded["input_ids"])

    def answer(self, asin: str) -> list[int]:
        """The ID's tokens as the model emits them after the prompt, then end-of-sequence."""
        return [*self.tokenizer(asin, add_special_tokens=False)["input_ids"],
                self.tokenizer.eos_token_id]

    def expand(self, text: str, counts: Sequence[int]) -> str:
        """Image ``i``'s single placeholder -> ``counts[i]`` of them (full image tokens)."""
        parts = text.split(self.placeholder)
        if len(parts) != len(counts) + 1:
            raise ValueError(f"{len(parts) - 1} placeholders for {len(counts)} images")
        return parts[0] + "".join(self.placeholder * n + part
                                  for n, part in zip(counts, parts[1:], strict=True))

    def encode(self, conversation: str, items: Sequence[Item], room: int,
               counts: Sequence[int] | None = None) -> tuple[list[int], bool]:
        """(prompt ids, truncated): the prompt leaves ``room`` tokens for the answer.
        ``counts``: tokens per candidate image, when each has its own number (``slots`` 1)."""
        shown = [replace(i, title=self.sanitize(i.title)) for i in items]
        extra = sum(counts) - len(counts) if counts is not None else 0
        built = table11.build(
            self.sanitize(conversation), shown, with_images=self.with_images,
            count_tokens=lambda text: len(self.ids(self.chat(self.format_slots(text)))) + extra,
            budget=self.max_length - room)
        if built.over_budget:
            raise BenchError(
                f"the instruction and {len(items)} candidates leave no room for the "
                f"conversation in {self.max_length} tokens", where="lavic prompt",
                hint="raise max_length or show fewer candidates")
        text = self.chat(self.format_slots(built.text))
        return self.ids(self.expand(text, counts) if counts is not None else text), \
            built.truncated
