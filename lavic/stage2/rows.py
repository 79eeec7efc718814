"""What stage 2 trains and validates on: examples turned into token ids and image keys, and
batches of them with their image rows read from the cache.

Every prompt leaves the answer room of the ``lavic`` generator (:meth:`ChatTurn.room
<baselines.generators.chat.ChatTurn.room>`): a training row and a ``generate`` validation
request leave ``max_new_tokens`` (its default, :data:`~lavic.stage2.config.GENERATED`), a
``score`` request the longest candidate ID + EOS. So a conversation cut at the input limit is
cut exactly as ``bench run --model lavic`` cuts it, and the model trains on the test's ids. A
training row is that prompt plus the target's ID + EOS, which overruns the limit only by what
the ID takes beyond the room. A ``listwise`` row (:class:`FinetuneConfig.objective
<lavic.stage2.config.FinetuneConfig>`) is scored, not generated, so its prompt leaves the room
``score`` decoding leaves (the longest candidate ID + EOS) and it carries every candidate's
answer: the ids of a ``score`` request, as the ``lavic`` generator scores them at test time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lavic.stage2.config import GENERATED, Objective
from lavic.stage2.examples import RecExample
from lavic.stage2.prompt import RecPrompt
from lavic.store.tokencache import TokenCache
from lavic.store.viewcache import ImageRows
from lavic.training import IGNORE, pad_rows


@dataclass(frozen=True)
class Asked:
    """One validation request as the model reads it."""

    prompt: list[int]
    keys: list[bytes]
    candidates: tuple[str, ...]
    answers: list[list[int]]  # score: each candidate's ID + EOS; generate: none
    truths: tuple[str, ...]


class RowBuilder:
    """Examples -> training rows (ids, labels, image keys) and validation requests through one
    :class:`RecPrompt`."""

    def __init__(self, coder: RecPrompt, cache: ImageRows | None,
                 objective: Objective = "generate") -> None:
        self.coder, self.cache, self.objective = coder, cache, objective

    def keys(self, example: RecExample) -> list[bytes]:
        if self.cache is None:
            return []
        return [self.cache.key_of(item.image_path) for item in example.candidates]

    def prompt(self, example: RecExample, room: int) -> tuple[list[int], list[bytes]]:
        keys = self.keys(example)
        counts = ([self.cache.counts[k] for k in keys] if isinstance(self.cache, TokenCache)
                  else None)
        return self.coder.encode(example.conversation.context, example.candidates, room,
                                 counts)[0], keys

    def row(self, example: RecExample) -> dict[str, Any]:
        """A training row: the prompt ``bench run`` feeds, then ID + EOS labelled; ``listwise``
        adds every candidate's answer and the target's index (score room, as scored)."""
        answer = self.coder.turn.answer(example.target)
        if self.objective == "generate":
            prompt, keys = self.prompt(example, self.coder.turn.room("generate", GENERATED))
            return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer,
                    "images": keys}
        asked = self.asked(example, "score")
        return {"input_ids": asked.prompt + answer,
                "labels": [IGNORE] * len(asked.prompt) + answer, "images": asked.keys,
                "answers": asked.answers, "prompt_length": len(asked.prompt),
                "target": asked.candidates.index(example.target)}

    def asked(self, example: RecExample, validation: str) -> Asked:
        """A validation request with the room the lavic generator leaves in ``validation``
        decoding, so the ids are the test's."""
        if not example.candidates:  # nothing to ask: every pair is a miss
            return Asked([], [], (), [], example.truths)
        turn = self.coder.turn
        answers = ([turn.answer(asin) for asin in example.asins]
                   if validation == "score" else [])
        prompt, keys = self.prompt(example, turn.room(validation, GENERATED, example.asins))
        return Asked(prompt, keys, example.asins, answers, example.truths)


def rows_hash(rows: Sequence[Any]) -> str:
    """One hash over every row (training rows, validation requests): prompt words,
    tokenizer, images, answers."""
    digest = hashlib.sha256()
    for row in rows:
        fields = row if isinstance(row, dict) else vars(row)
        digest.update(json.dumps({k: [x.hex() for x in v] if k in ("images", "keys") else v
                                  for k, v in fields.items()}, sort_keys=True).encode())
    return digest.hexdigest()


class Collator:
    """Right-pads a batch and reads its candidates' view embeddings from the cache."""

    def __init__(self, pad_id: int, cache: ImageRows | None, hidden: int) -> None:
        self.pad_id, self.cache = pad_id, cache
        self.empty = torch.zeros(0, 1, hidden)

    def views(self, keys: list[bytes]) -> torch.Tensor:
        return self.cache.read(keys) if self.cache is not None and keys else self.empty

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        padded = pad_rows([(row["input_ids"], row["labels"]) for row in batch], self.pad_id)
        listwise = {name: [row[name] for row in batch] for name in
                    ("answers", "prompt_length", "target") if name in batch[0]}
        return {**padded, "views": self.views([k for row in batch for k in row["images"]]),
                **listwise}
