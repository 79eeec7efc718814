"""Candidate scoring over one reused KV cache, and splicing vectors into a prompt's embeddings.

``score`` decoding ranks the ten candidate IDs by log-likelihood given the prompt: the prompt
runs once and its KV cache is copied for the continuations instead of re-running it per
candidate (``benchmarks/scoring.py`` measures the saving against the naive reference).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Scores:
    logprobs: list[float]
    forward_tokens: int  # tokens the model ran over, padding included (cost of the method)


def splice(embeds: torch.Tensor, input_ids: torch.Tensor, token_id: int,
           vectors: torch.Tensor) -> torch.Tensor:
    """``embeds`` with the positions of ``token_id`` in ``input_ids`` replaced, in reading
    order (row by row), by the rows of ``vectors`` -- how image features enter a prompt."""
    mask = (input_ids == token_id).unsqueeze(-1).to(embeds.device)
    if int(mask.sum()) != len(vectors):
        raise ValueError(f"{int(mask.sum())} placeholders for {len(vectors)} vectors")
    return embeds.masked_scatter(mask, vectors.to(embeds.device, embeds.dtype))


@torch.no_grad()
def score_continuations(
    model: Any,
    inputs: Mapping[str, torch.Tensor],
    continuations: Sequence[Sequence[int]],
    *,
    reuse_cache: bool = True,
    group: int = 10,
) -> Scores:
    """Sum of log p(token) over each continuation, given the one-row prompt ``inputs``
    (``input_ids`` or ``inputs_embeds``, with ``attention_mask``).

    With ``reuse_cache`` the prompt runs once; up to ``group`` continuations then share a copy
    of its KV cache expanded to their batch (right padding is harmless: a padded position
    comes after every real one). Without it, each prompt + continuation runs from scratch --
    the naive reference the benchmark and tests compare against. A continuation's last token
    is never fed in: nothing is predicted after it, and only the logits that score a token
    are computed (``logits_to_keep``).
    """
    mask = inputs["attention_mask"]
    device, length = mask.device, mask.shape[1]

    def picked(logits: torch.Tensor, cont: Sequence[int]) -> float:
        """Sum of log-softmax(logits[k])[cont[k]]: row k of ``logits`` predicts token k."""
        logp = logits[: len(cont)].float().log_softmax(-1)
        index = torch.tensor(cont, device=device).unsqueeze(-1)
        return float(logp.gather(-1, index).sum())

    if not reuse_cache:
        totals, forward = [], 0
        for cont in continuations:
            tail = torch.tensor([list(cont[:-1])], dtype=torch.long, device=device)
            if "inputs_embeds" in inputs:
                embeds = model.get_input_embeddings()(tail).to(inputs["inputs_embeds"].dtype)
                full = {**inputs,
                        "inputs_embeds": torch.cat([inputs["inputs_embeds"], embeds], dim=1)}
            else:
                full = {**inputs, "input_ids": torch.cat([inputs["input_ids"], tail], dim=1)}
            width = length + tail.shape[1]
            full["attention_mask"] = torch.ones((1, width), dtype=mask.dtype, device=device)
            totals.append(picked(model(**full, logits_to_keep=len(cont)).logits[0], cont))
            forward += width
        return Scores(totals, forward)
    out = model(**inputs, use_cache=True, logits_to_keep=1)
    # transformers 5.24 renamed `past_key_values` to `cache` (the old name warns): the cache
    # goes back in under the name the model's output gives it.
    name = "cache" if "cache" in out else "past_key_values"
    last = out.logits[0]
    totals, forward = [], length
    for start in range(0, len(continuations), group):
        conts = continuations[start : start + group]
        width = max(len(c) for c in conts) - 1
        if not width:
            totals.extend(picked(last, c) for c in conts)
            continue
        rows = [list(c[:-1]) + [c[0]] * (width - len(c) + 1) for c in conts]
        cache = copy.deepcopy(out[name])
        cache.batch_repeat_interleave(len(conts))
        logits = model(input_ids=torch.tensor(rows, dtype=torch.long, device=device),
                       **{name: cache}).logits
        totals.extend(picked(torch.cat([last, logits[k]]), c) for k, c in enumerate(conts))
        forward += len(conts) * width
    return Scores(totals, forward)
