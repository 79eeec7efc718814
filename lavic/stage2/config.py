"""A stage-2 run's settings and what its variant reads, shared by training
(:mod:`lavic.stage2.finetune`) and inference (:mod:`lavic.generator`).

The variants: ``lavic`` (the stage-1 adapter merged, ``views`` embeddings per image),
``no-images`` (titles only), ``no-distill`` (views from the base vision side) and
``entire-tokens`` (every token of the views, :mod:`lavic.model.fulltokens`). Nothing here
loads the training loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from baselines.generators.hf import HFOptions
from lavic.model.fulltokens import EntireTokens, entire_tokens
from lavic.model.views import ViewMaker
from lavic.settings import TrainingConfig
from lavic.store.tokencache import TokenCache
from lavic.store.viewcache import ImageRows, ViewCache

Variant = Literal["lavic", "no-images", "no-distill", "entire-tokens"]
Validation = Literal["generate", "score"]
#: the stage-2 loss: ``generate``, next-token NLL of the target's ID + EOS (the paper's);
#: ``listwise``, cross-entropy of a softmax over the k candidates' ID + EOS log-likelihoods
#: (one signal per example over all candidates: what a CPU budget of a few hundred steps needs)
Objective = Literal["generate", "listwise"]
#: new tokens a generated answer may take: the lavic generator's default ``max_new_tokens``,
#: which is also the answer room stage 2's prompts leave (the ids are the test's)
GENERATED: int = HFOptions.model_fields["max_new_tokens"].default


class FinetuneConfig(TrainingConfig):
    """Stage-2 settings (:class:`~lavic.settings.TrainingConfig` plus the variant, the
    candidates and how validation asks); the paper's 2K input limit and batch 1."""

    variant: Variant = Field("lavic", description=(
        "lavic (stage-1 adapter, views per image), no-images (titles only), no-distill (views "
        "from the base vision side) or entire-tokens (every token of the views, Table 7)."))
    entire_tokens: EntireTokens = Field("views", description=(
        "For variant entire-tokens: views (every token of the views, the paper's 5 x 577) or "
        "anyres (LLaVA-NeXT's own any-resolution image tokens)."))
    images_per_item: int = Field(1, ge=1, le=1, description=(
        "Images per candidate: 1, its {ASIN}_0.jpg, as the authors' stage 2 and inference."))
    candidates: int = Field(10, gt=0, description=(
        "Candidates per training example, the ground truth among them (the paper: 10)."))
    max_length: int = Field(2048, gt=0, description=(
        "Input limit in tokens (the paper: 2K); only the conversation is cut, oldest text "
        "first."))
    batch_size: int = Field(1, gt=0, description=(
        "Examples per process and forward pass (the paper, Section 5.1: 1)."))
    embed_batch_size: int = Field(16, gt=0, description=(
        "Images per vision-tower pass while the image cache is filled before training."))
    validation: Validation = Field("generate", description=(
        "How the epoch and grid point are chosen: generate (the test's protocol: shipped "
        "lists, greedy answers, the paper's parser) or score (ground truth inserted, "
        "best-scored ID: faster, easier)."))
    objective: Objective = Field("generate", description=(
        "The loss: generate (next-token NLL of the target's ID + EOS, the paper's) or "
        "listwise (softmax over the candidates' ID + EOS log-likelihoods; batch size 1; its "
        "prompt leaves the room score decoding leaves)."))

    @model_validator(mode="after")
    def _listwise_rows(self) -> FinetuneConfig:
        if self.objective == "listwise" and self.batch_size != 1:
            raise ValueError("objective listwise scores one conversation's candidates at a "
                             "time: use batch_size 1 (grad_accum for larger batches)")
        return self


def slots(config: FinetuneConfig) -> int:
    """Placeholders per image slot in the text (entire tokens: one, expanded per image)."""
    return {"no-images": 0, "entire-tokens": 1}.get(config.variant, config.views)


def image_rows(config: FinetuneConfig, model_config: Any, cache_dir: Path, *, base: str,
               stage1: str, tokenizer: Any) -> ImageRows | None:
    """The cache a variant reads its image vectors from (none for titles only)."""
    hidden = int(model_config.text_config.hidden_size)
    if config.variant == "no-images":
        return None
    if config.variant == "entire-tokens":
        full = entire_tokens(config.entire_tokens, model_config, views=config.views,
                             layer=config.vision_layer, tokenizer=tokenizer)
        return TokenCache(cache_dir, base=base, full=full, hidden=hidden)
    return ViewCache(cache_dir, base=base, stage1=stage1,
                     views=ViewMaker(model_config, config.views), layer=config.vision_layer,
                     hidden=hidden)
