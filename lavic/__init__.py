"""LaViC: visual self-distillation + LoRA recommendation fine-tuning (the method).

:func:`register_generators` is this distribution's ``lavic_bench.generators`` entry point; its
targets are imported only when a generator is built, so ``bench ls`` stays fast.
"""

from typing import Any

GENERATORS = {
    "lavic": ("lavic.generator:build_lavic",
              "LaViC: 5 distilled view embeddings per image (--checkpoint DIR)"),
    "lavic-no-images": ("lavic.generator:build_no_images",
                        "LaViC ablation: titles only, same fine-tuning (--checkpoint DIR)"),
    "lavic-no-distill": ("lavic.generator:build_no_distill",
                         "LaViC ablation: view embeddings without stage 1 (--checkpoint DIR)"),
    "lavic-entire-tokens": ("lavic.generator:build_entire_tokens",
                            "LaViC ablation: all of LLaVA's image tokens per image "
                            "(--checkpoint DIR)"),
    "lavic-combined": ("lavic.generator:build_combined",
                       "LaViC fine-tuned once over all domains, Table 8 (--checkpoint DIR)"),
}


def register_generators(registry: Any) -> None:
    for name, (target, summary) in GENERATORS.items():
        registry.register(name, target, summary)
