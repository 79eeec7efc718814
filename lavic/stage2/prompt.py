"""The recommendation prompt as token ids, one implementation for training and inference.

The words are the harness's own (``bench.task.prompt``, the paper's Table 11): each candidate is
``ID: title`` followed by its image slot, which becomes ``views`` placeholder tokens (the
model's ``<image>`` token) per image. The turn is rendered and tokenised by the chat-turn rule
every local prompt uses (:class:`baselines.generators.chat.ChatTurn`). Stage 2 trains on
exactly the ids the ``lavic`` generator later feeds (the generator's rendering hooks delegate
here, and both leave the generator's answer room), and only the conversation is cut, oldest
text first, so that prompt plus answer fit the input limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from baselines.generators.chat import ChatTurn
from bench.core.errors import BenchError
from bench.task import prompt as table11
from bench.task.data.schema import Item


@dataclass(frozen=True)
class RecPrompt:
    """Renders and tokenises the Table 11 prompt for one chat turn and view setting."""

    turn: ChatTurn
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
            count_tokens=lambda text: len(self.turn.encode(self.format_slots(text))) + extra,
            budget=self.max_length - room)
        if built.over_budget:
            raise BenchError(
                f"the instruction and {len(items)} candidates leave no room for the "
                f"conversation in {self.max_length} tokens", where="lavic prompt",
                hint="raise max_length or show fewer candidates")
        text = self.turn.render(self.format_slots(built.text))
        return self.turn.ids(self.expand(text, counts) if counts is not None else text), \
            built.truncated
