"""Candidate scoring over one reused KV cache speaks the installed transformers' current API:
no deprecation (or any other) warning from our calls, on a text model and on LLaVA-NeXT, and
the cache it hands back is really used (the scores equal the from-scratch reference)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    MistralConfig,
)
from transformers.utils import logging as hf_logging

from baselines.generators.scoring import score_continuations

VOCAB = 40
TEXT = {"vocab_size": VOCAB, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128}
CONTINUATIONS = [[5, 6, 7], [5, 8], [9], [10, 11, 12, 13], [5, 6, 14]]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def no_warnings() -> Iterator[None]:
    """Any Python warning raises; transformers' own logged warnings are collected and must be
    none. Its once-per-process memo is cleared first, so an earlier test cannot have used up a
    message this call would log."""
    collect = _Collect()
    root = hf_logging.get_logger("transformers")
    logging.Logger.warning_once.cache_clear()  # type: ignore[attr-defined]
    root.addHandler(collect)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    finally:
        root.removeHandler(collect)
    assert collect.messages == []


def llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**TEXT)).eval()


def llava_next() -> LlavaNextForConditionalGeneration:
    torch.manual_seed(0)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=28, patch_size=14,
                              projection_dim=16)
    config = LlavaNextConfig(text_config=MistralConfig(**TEXT), vision_config=vision,
                             image_token_index=VOCAB - 1, image_grid_pinpoints=[[28, 28]])
    return LlavaNextForConditionalGeneration(config).eval()


def prompt(model: torch.nn.Module, *, embeds: bool) -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 2, 3, 4, 20, 21, 22]])
    inputs = {"attention_mask": torch.ones_like(ids)}
    if embeds:  # how the LaViC generators feed their spliced image vectors
        return {**inputs, "inputs_embeds": model.get_input_embeddings()(ids).detach()}
    return {**inputs, "input_ids": ids}


@pytest.mark.parametrize(("build", "embeds"), [(llama, False), (llava_next, True)],
                         ids=["llama-ids", "llava-next-embeds"])
def test_kv_reuse_scoring_warns_nothing_and_uses_its_cache(
    build: Callable[[], torch.nn.Module], embeds: bool,
) -> None:
    model = build()
    inputs = prompt(model, embeds=embeds)
    with no_warnings():
        fast = score_continuations(model, inputs, CONTINUATIONS, group=2)
    naive = score_continuations(model, inputs, CONTINUATIONS, reuse_cache=False)
    # A cache passed under a name the model ignores would restart positions at 0: other scores.
    assert torch.allclose(torch.tensor(fast.logprobs), torch.tensor(naive.logprobs), atol=1e-5)
    # the prompt once (7), then per group of 2 its longest continuation less its last token
    assert fast.forward_tokens == 7 + 2 * 2 + 2 * 3 + 1 * 2
