"""Built-in retrievers and generators, registered lazily (nothing heavy is imported here)."""

import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.context import BuildContext
from bench.paper import IMAGE_SUFFIX
from bench.registry import generators, retrievers

retrievers.register("bm25", "baselines.retrievers.bm25:build", "BM25 over item titles (bm25s)")
retrievers.register(
    "sbert", "baselines.retrievers.dense:build_sbert", "SBERT (sentence-transformers) embeddings"
)
retrievers.register(
    "roberta", "baselines.retrievers.dense:build_roberta", "RoBERTa-large, mean pooling"
)
retrievers.register(
    "simcse",
    "baselines.retrievers.dense:build_simcse",
    "SimCSE-large (princeton-nlp/sup-simcse-roberta-large), CLS pooling",
)
retrievers.register(
    "blair", "baselines.retrievers.dense:build_blair", "BLaIR-base (hyp1231/blair-roberta-base)"
)
retrievers.register(
    "openai-emb",
    "baselines.retrievers.openai_emb:build",
    "OpenAI text-embedding-3-large via any /v1/embeddings server",
)
retrievers.register(
    "dataset:st",
    "baselines.retrievers.shipped:build_st",
    "the release's precomputed candidates_st (SBERT; unordered)",
)
retrievers.register(
    "dataset:gpt_large",
    "baselines.retrievers.shipped:build_gpt_large",
    "the release's precomputed candidates_gpt_large (OpenAI-emb large; unordered)",
)
generators.register(
    "oracle",
    "baselines.generators.oracle:build",
    "sees the true visual attributes of synthetic items (vision upper bound)",
)
generators.register(
    "lexical",
    "baselines.generators.lexical:build",
    "text-only: picks the candidate whose title overlaps the conversation most",
)
generators.register(
    "gpt-3.5-turbo",
    "baselines.generators.openai_chat:build_gpt35",
    "OpenAI gpt-3.5-turbo, titles only (Table 11 prompt)",
)
generators.register(
    "gpt-4o-mini",
    "baselines.generators.openai_chat:build_gpt4o_mini",
    "OpenAI gpt-4o-mini; images = true adds each candidate's image",
)
generators.register(
    "gpt-4o",
    "baselines.generators.openai_chat:build_gpt4o",
    "OpenAI gpt-4o; images = true adds each candidate's image",
)
generators.register(
    "openai-chat",
    "baselines.generators.openai_chat:build",
    "any chat model (option model) on an OpenAI-compatible server, e.g. vLLM (--base-url)",
)
generators.register(
    "vicuna",
    "baselines.generators.causal:build",
    "Vicuna-7B v1.5 or any HF causal LM (model_path), titles only; decoding generate|score",
)
generators.register(
    "llava-1.5",
    "baselines.generators.llava:build_llava_15",
    "LLaVA-1.5-7B (llava-hf); images = true adds each candidate's image",
)
generators.register(
    "llava-1.6",
    "baselines.generators.llava:build_llava_16",
    "LLaVA-1.6-Mistral-7B (llava-hf), any-resolution images with images = true",
)


def _with_images(target: str) -> Callable[[BuildContext], Any]:
    """The paper's "title + image" setting as its own name, so both settings of one model
    can share a run directory and a table."""

    def build(ctx: BuildContext) -> Any:
        module, _, attr = target.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        return factory(replace(ctx, options={**ctx.options, "images": True}))

    return build


for _name, _target in (
    ("llava-1.5", "baselines.generators.llava:build_llava_15"),
    ("llava-1.6", "baselines.generators.llava:build_llava_16"),
    ("gpt-4o-mini", "baselines.generators.openai_chat:build_gpt4o_mini"),
    ("gpt-4o", "baselines.generators.openai_chat:build_gpt4o"),
):
    generators.register(
        _name + IMAGE_SUFFIX,
        _with_images(_target),
        f"{_name} with one image per candidate (the paper's title + image setting)",
    )
