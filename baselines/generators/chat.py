"""One user turn as a local model reads it: the chat template, the BOS rule, the answer's ids
and the room the prompt leaves for the answer.

Every local prompt goes through here -- the HF generators (:mod:`baselines.generators.hf`),
LaViC's description prompt (stage 1) and its recommendation prompt (stage 2 and the ``lavic``
generator) -- so training and inference can never tokenise a turn differently.

The BOS rule: the rendered text decides. A template that writes BOS itself (Mistral's
``<s>[INST]``) gets no second one; a template that does not (llava-hf's LLaVA-1.5 turn), or no
template at all, gets the BOS the tokenizer adds by itself -- and a tokenizer that adds none
(GPT-2-like, SmolLM2) gets none, with no other special token slipped in either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def user_message(text: str) -> list[dict[str, Any]]:
    """A plain-text user turn, as text-only chat templates take it."""
    return [{"role": "user", "content": text}]


@dataclass(frozen=True)
class ChatTurn:
    """Renders and tokenises one user turn for ``tokenizer``.

    ``templater`` owns the chat template (a processor or the tokenizer itself, the default);
    without a template the text is put into ``fallback`` (a ``{prompt}`` format); ``messages``
    shapes the turn for the template (plain text, or a processor's content parts).
    """

    tokenizer: Any
    templater: Any = None
    fallback: str = "{prompt}"
    messages: Callable[[str], list[dict[str, Any]]] = user_message

    def render(self, text: str) -> str:
        """The turn ready for the answer: the template with its assistant cue, or the
        fallback format."""
        owner = self.tokenizer if self.templater is None else self.templater
        if getattr(owner, "chat_template", None):
            return str(owner.apply_chat_template(self.messages(text), tokenize=False,
                                                 add_generation_prompt=True))
        return self.fallback.format(prompt=text)

    @functools.cached_property
    def adds_bos(self) -> bool:
        """Whether the tokenizer puts BOS in front of a text by itself."""
        bos = self.tokenizer.bos_token_id
        probe = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        return bos is not None and list(probe[:1]) == [bos]

    def special_tokens(self, rendered: str) -> bool:
        """``add_special_tokens`` for tokenising ``rendered``: BOS only where the tokenizer adds
        one and the rendered text does not start with it already."""
        bos = self.tokenizer.bos_token
        return self.adds_bos and not (bos and rendered.startswith(bos))

    def ids(self, rendered: str) -> list[int]:
        """Token ids of a rendered turn (BOS by :meth:`special_tokens`)."""
        encoded = self.tokenizer(rendered, add_special_tokens=self.special_tokens(rendered))
        return list(encoded["input_ids"])

    def encode(self, text: str) -> list[int]:
        """Token ids of the user turn ``text``, rendered (:meth:`render`) and tokenised."""
        return self.ids(self.render(text))

    def answer(self, text: str, eos: int | None = None) -> list[int]:
        """An answer's tokens as the model emits them after the turn, then end-of-sequence
        (``eos``: the model's own, default the tokenizer's)."""
        return [*self.tokenizer(text, add_special_tokens=False)["input_ids"],
                self.tokenizer.eos_token_id if eos is None else eos]

    def room(self, decoding: str, max_new_tokens: int, answers: Sequence[str] = ()) -> int:
        """Tokens the prompt leaves for the answer: ``max_new_tokens`` when generating, the
        longest of ``answers`` (ID + EOS) when scoring them. Stage 2 trains with the
        ``generate`` room of the generator's default, so a cut conversation is cut alike."""
        if decoding == "score":
            return max((len(self.answer(a)) for a in answers), default=0)
        return max_new_tokens
