"""Proof that the images are used (issue 7): on the synthetic world, where an item's colour is
visible only in its image, a tiny model of the real architecture that learns to write item
descriptions from ``views`` [CLS] embeddings must do better with each item's own embeddings
than with the same embeddings shuffled across items -- lower description loss and more
colour words right -- on held-out items, for every seed.

Stand-in, labelled as such: a random tiny LLM cannot write descriptions, so the whole model
(LLM included) is trained, not only stage 1's LoRA; everything else is the method's own path
(``Collator`` with the Table 10 prompt, ``ViewMaker``, ``view_embeddings``, the splice,
``DistillTrainer``). Words are single tokens so that a CPU-minute is enough.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from bench.task.data.synthetic import LEXICON, synthesize
from lavic.model.tiny import SPECIALS, image_aware_tiny
from lavic.model.views import ViewMaker
from lavic.stage1.data import Described
from lavic.stage1.distill import Collator, DistillConfig, DistillTrainer, token_nll
from lavic.stage1.prompt import DESCRIBE_PROMPT
from lavic.training import training_arguments as distill_arguments

HELD_OUT = 50
STEPS, BATCH, LR = 1_000, 16, 3e-3  # about 130 CPU-s a seed
COLOURS = [phrasings[0] for phrasings in LEXICON["colour"].values()]
# The bar, per seed. Measured here: seed 0 0.281 vs 0.367 nats per token, colour 0.34 vs 0.18;
# seed 1 0.268 vs 0.395, colour 0.38 vs 0.12 (the prototype of issue 7: +0.13-0.17 nats and
# +0.21-0.41 colour). At 600 steps neither margin exists yet.
MIN_NLL_MARGIN = 0.05  # nats per description token
MIN_COLOUR_MARGIN = 0.1  # share of the 50 held-out items whose colour word is ranked first


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[list[Described], list[Described], list[str]]:
    """(training items, held-out items, held-out colours) of the medium synthetic world."""
    root = synthesize(tmp_path_factory.mktemp("world"), seed=0, size="medium")
    meta = json.loads((root / "item2meta_train.json").read_text())
    attributes = json.loads((root / "synthetic_attributes.json").read_text())
    items = [Described(title=m["title"], image=root / "train_images" / f"{asin}_0.jpg",
                       description=m["description"]) for asin, m in meta.items()]
    colours = [LEXICON["colour"][attributes[asin]["colour"]][0] for asin in meta]
    return items[:-HELD_OUT], items[-HELD_OUT:], colours[-HELD_OUT:]


def word_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """One token per word or punctuation run of ``texts``; the last id is ``<image>``."""
    split = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in split.pre_tokenize_str(text)})
    vocab = {t: i for i, t in enumerate([*SPECIALS, *words, "<image>"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens=["<image>"])


def nll_per_token(model: torch.nn.Module, collate: Collator, items: list[Described],
                  shuffled: bool) -> float:
    """Description loss on ``items``; shuffled: item i sees item i+1's views."""
    batch = collate(items)
    if shuffled:
        batch["pixels"] = batch["pixels"].roll(1, dims=0)
    with torch.no_grad():
        nll, count = token_nll(model, batch, -1)
    return float(nll.sum() / count.sum())


def colour_accuracy(model: torch.nn.Module, collate: Collator, items: list[Described],
                    colours: list[str], shuffled: bool) -> float:
    """Share of items whose description with its true colour word scores best among the same
    description with each of the 12 colour words."""
    pixels = collate(items)["pixels"]
    if shuffled:
        pixels = pixels.roll(1, dims=0)
    right = 0
    for i, (item, colour) in enumerate(zip(items, colours, strict=True)):
        variants = [item.model_copy(update={"description": re.sub(
            rf"\b{colour}\b", other, item.description, count=1)}) for other in COLOURS]
        batch = collate(variants)
        batch["pixels"] = pixels[i:i + 1].expand_as(batch["pixels"])
        with torch.no_grad():
            nll, _ = token_nll(model, batch, -1)
        right += COLOURS[int(nll.argmin())] == colour
    return right / len(items)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_real_view_embeddings_beat_shuffled_ones(world, seed: int, tmp_path: Path) -> None:
    train, held, colours = world
    tokenizer = word_tokenizer([DESCRIBE_PROMPT, *COLOURS,
                                *(t for ex in train + held for t in (ex.title, ex.description))])
    model = image_aware_tiny(len(tokenizer), seed=seed).train()
    config = DistillConfig(batch_size=BATCH, max_steps=STEPS, learning_rate=LR,
                           weight_decay=0.0, seed=seed)
    collate = Collator(tokenizer, ViewMaker(model.config), model.config.image_token_index,
                       config.max_length)
    args = distill_arguments(tmp_path, config)
    args.eval_strategy = args.save_strategy = "no"  # one evaluation, below
    args.load_best_model_at_end, args.disable_tqdm, args.logging_steps = False, True, STEPS
    DistillTrainer(model=model, args=args, data_collator=collate, train_dataset=train,
                   vision_layer=-1).train()
    model.eval()
    real = nll_per_token(model, collate, held, shuffled=False)
    other = nll_per_token(model, collate, held, shuffled=True)
    right = colour_accuracy(model, collate, held, colours, shuffled=False)
    wrong = colour_accuracy(model, collate, held, colours, shuffled=True)
    print(f"seed {seed}: nll/token {real:.3f} vs shuffled {other:.3f}; "
          f"colour accuracy {right:.2f} vs shuffled {wrong:.2f}")
    assert other - real > MIN_NLL_MARGIN
    assert right - wrong > MIN_COLOUR_MARGIN
