"""Built-in retrievers and generators, declared as entry points of this distribution.

``pyproject.toml`` points the ``lavic_bench.retrievers`` / ``lavic_bench.generators`` groups
at :func:`register_retrievers` / :func:`register_generators`, exactly as a third-party
plug-in would; nothing heavy is imported here, every target is a lazy ``module:attr``.
"""

import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench.core.context import BuildContext
from bench.core.options import schema_of, takes
from bench.results.paper import IMAGE_SUFFIX

RETRIEVERS = {
    "bm25": ("baselines.retrievers.bm25:build", "BM25 over item titles (bm25s)"),
    "sbert": ("baselines.retrievers.dense:build_sbert", "SBERT (sentence-transformers) embeddings"),
    "roberta": ("baselines.retrievers.dense:build_roberta", "RoBERTa-large, mean pooling"),
    "simcse": ("baselines.retrievers.dense:build_simcse",
               "SimCSE-large (princeton-nlp/sup-simcse-roberta-large), CLS pooling"),
    "blair": ("baselines.retrievers.dense:build_blair", "BLaIR-base (hyp1231/blair-roberta-base)"),
    "openai-emb": ("baselines.retrievers.openai_emb:build",
                   "OpenAI text-embedding-3-large via any /v1/embeddings server"),
    "dataset:st": ("baselines.retrievers.shipped:build_st",
                   "the release's precomputed candidates_st (SBERT; unordered)"),
    "dataset:gpt_large": ("baselines.retrievers.shipped:build_gpt_large",
                          "the release's precomputed candidates_gpt_large (OpenAI-emb large; "
                          "unordered)"),
}
GENERATORS = {
    "oracle": ("baselines.generators.oracle:build",
               "sees the true visual attributes of synthetic items (vision upper bound)"),
    "lexical": ("baselines.generators.lexical:build",
                "text-only: picks the candidate whose title overlaps the conversation most"),
    "gpt-3.5-turbo": ("baselines.generators.openai_chat:build_gpt35",
                      "OpenAI gpt-3.5-turbo, titles only (Table 11 prompt)"),
    "gpt-4o-mini": ("baselines.generators.openai_chat:build_gpt4o_mini",
                    "OpenAI gpt-4o-mini; images = true adds each candidate's image"),
    "gpt-4o": ("baselines.generators.openai_chat:build_gpt4o",
               "OpenAI gpt-4o; images = true adds each candidate's image"),
    "openai-chat": ("baselines.generators.openai_chat:build",
                    "any chat model (option model) on an OpenAI-compatible server, e.g. vLLM "
                    "(--base-url)"),
    "vicuna": ("baselines.generators.causal:build",
               "Vicuna-7B v1.5 or any HF causal LM (model_path), titles only; decoding "
               "generate|score"),
    "llava-1.5": ("baselines.generators.llava:build_llava_15",
                  "LLaVA-1.5-7B (llava-hf); images = true adds each candidate's image"),
    "llava-1.6": ("baselines.generators.llava:build_llava_16",
                  "LLaVA-1.6-Mistral-7B (llava-hf), any-resolution images with images = true"),
}
#: Models whose paper setting "title + image" gets its own name (``<name>+img``).
WITH_IMAGES = ("llava-1.5", "llava-1.6", "gpt-4o-mini", "gpt-4o")


def _with_images(target: str) -> Callable[[BuildContext], Any]:
    """The paper's "title + image" setting as its own name, so both settings of one model
    can share a run directory and a table."""

    def factory() -> Callable[[BuildContext], Any]:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @takes(lambda: schema_of(factory()))
    def build(ctx: BuildContext) -> Any:
        return factory()(replace(ctx, options={**ctx.options, "images": True}))

    return build


def register_retrievers(registry: Any) -> None:
    for name, (target, summary) in RETRIEVERS.items():
        registry.register(name, target, summary)


def register_generators(registry: Any) -> None:
    for name, (target, summary) in GENERATORS.items():
        registry.register(name, target, summary)
    for name in WITH_IMAGES:
        registry.register(
            name + IMAGE_SUFFIX,
            _with_images(GENERATORS[name][0]),
            f"{name} with one image per candidate (the paper's title + image setting)",
        )
