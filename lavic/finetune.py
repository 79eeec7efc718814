"""Stage 2, recommendation fine-tuning: answer the Table 11 prompt with the ground truth's ID.

The stage-1 adapter is merged into the base weights and the whole vision side, projector
included, stays frozen; LoRA adapts the LLM's attention and MLP projections only. Every
candidate image's view embeddings are computed once into the view cache
(:mod:`lavic.viewcache`) before training, so training reads rows and never runs the vision
tower. The prompt is the harness's own (:mod:`lavic.recprompt`: exactly what the ``lavic``
generator feeds); the loss covers the ID tokens and end-of-sequence only. Training is
transformers' ``Trainer`` (checkpoints, resume, accumulation, bf16, gradient checkpointing,
data-parallel as in stage 1); the epoch kept is the one with the best validation HR@1 (the
authors' validation loss is NaN). Validation asks what the test asks by default (``generate``:
the raw candidate lists, greedy answers read by the paper's parser, hits over (conversation,
ground truth) pairs); ``score`` ranks the candidates' IDs with the ground truth inserted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from baselines.generators.hf import HFOptions
from baselines.generators.scoring import score_continuations
from bench.data.schema import Item, Split
from bench.errors import BenchError
from bench.parser import PAPER, parse_choice
from bench.protocols import Choice
from bench.results import hit
from lavic import checkpoint
from lavic.distill import (
    IGNORE,
    DistillConfig,
    DistillTrainer,
    labelled_nll,
    place,
    training_arguments,
    write_spec,
)
from lavic.embed import llava, spliced_inputs
from lavic.examples import RecExample, as_tested, finetune_examples
from lavic.fulltokens import EntireTokens, TokenCache, entire_tokens
from lavic.lora import stage2
from lavic.recprompt import RecPrompt
from lavic.viewcache import ImageRows, ViewCache
from lavic.views import ViewMaker

Variant = Literal["lavic", "no-images", "no-distill", "entire-tokens"]
Validation = Literal["generate", "score"]
#: the stage-2 loss: ``generate``, next-token NLL of the target's ID + EOS (the paper's);
#: ``listwise``, cross-entropy of a softmax over the k candidates' ID + EOS log-likelihoods
#: (one signal per example over all candidates: what a CPU budget of a few hundred steps needs)
Objective = Literal["generate", "listwise"]
METRIC = "hr@1"
#: new tokens a generate-mode answer may take: the lavic generator's default
GENERATED = HFOptions.model_fields["max_new_tokens"].default


class FinetuneConfig(DistillConfig):
    """Stage-2 settings: stage 1's training defaults, the paper's 2K input limit and batch 1, the
    variant (``lavic``; ``no-images``: titles only; ``no-distill``: views from the base vision
    side; ``entire-tokens``: every token of the views, :mod:`lavic.fulltokens`)."""

    variant: Variant = "lavic"
    entire_tokens: EntireTokens = "views"  # the paper's 5 x 577; anyres: LLaVA's own tokens
    images_per_item: int = Field(1, ge=1, le=1)  # {ASIN}_0.jpg only, as the authors' stage 2
    candidates: int = Field(10, gt=0)
    max_length: int = Field(2048, gt=0)
    batch_size: int = Field(1, gt=0)  # Section 5.1: "set the batch size to 1"
    embed_batch_size: int = Field(16, gt=0)
    validation: Validation = "generate"  # the test's protocol; score: faster, easier
    objective: Objective = "generate"

    @model_validator(mode="after")
    def _listwise_rows(self) -> FinetuneConfig:
        if self.objective == "listwise" and self.batch_size != 1:
            raise ValueError("objective listwise scores one conversation's candidates at a "
                             "time: use batch_size 1 (grad_accum for larger batches)")
        return self


@dataclass(frozen=True)
class RecSample:
    """A conversation, the candidates shown for it and the ground truths HR@1 counts."""

    conversation: str
    candidates: tuple[Item, ...]
    truths: tuple[str, ...]  # training: the one target; tested: every ground truth

    @property
    def target(self) -> str:
        """The answer a training sample teaches (its only truth)."""
        return self.truths[0]


def _as_samples(split: Split, examples: Sequence[RecExample]) -> list[RecSample]:
    """Examples as prompts' inputs (conversation text, catalog items)."""
    contexts = {c.id: c.context for c in split.conversations}
    return [RecSample(contexts[ex.conversation_id],
                      tuple(split.catalog.get(a) or Item(asin=a, title="")
                            for a in ex.candidates), ex.truths)
            for ex in examples]


def samples(split: Split, retrieved: Mapping[str, Sequence[str]], *, k: int = 10,
            seed: int = 0) -> list[RecSample]:
    """:func:`lavic.examples.finetune_examples` (training; ``score`` validation)."""
    return _as_samples(split, finetune_examples(split, retrieved, k=k, seed=seed))


def samples_as_tested(split: Split, retrieved: Mapping[str, Sequence[str]], *, k: int = 10
                      ) -> list[RecSample]:
    """:func:`lavic.examples.as_tested` (``generate`` validation: the test's lists)."""
    return _as_samples(split, as_tested(split, retrieved, k=k))


@dataclass(frozen=True)
class Asked:
    """One validation request as the model reads it."""

    prompt: list[int]
    keys: list[bytes]
    candidates: tuple[str, ...]
    answers: list[list[int]]  # score: each candidate's ID + EOS; generate: none
    truths: tuple[str, ...]


class Encoder:
    """Samples -> training rows (ids, labels, image keys) through one :class:`RecPrompt`."""

    def __init__(self, coder: RecPrompt, cache: ImageRows | None,
                 objective: Objective = "generate") -> None:
        self.coder, self.cache, self.objective = coder, cache, objective

    def keys(self, sample: RecSample) -> list[bytes]:
        if self.cache is None:
            return []
        return [self.cache.key_of(item.image_path) for item in sample.candidates]

    def prompt(self, sample: RecSample, room: int) -> tuple[list[int], list[bytes]]:
        keys = self.keys(sample)
        counts = ([self.cache.counts[k] for k in keys] if isinstance(self.cache, TokenCache)
                  else None)
        return self.coder.encode(sample.conversation, sample.candidates, room, counts)[0], keys

    def row(self, sample: RecSample) -> dict[str, Any]:
        """Prompt + the target's ID + EOS, labelled on the answer; ``listwise`` adds every
        candidate's answer and the target's index (the prompt leaves room for the longest)."""
        answer = self.coder.answer(sample.target)
        if self.objective == "generate":
            prompt, keys = self.prompt(sample, len(answer))
            return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer,
                    "images": keys}
        answers = [self.coder.answer(item.asin) for item in sample.candidates]
        prompt, keys = self.prompt(sample, max(map(len, answers)))
        return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer,
                "images": keys, "answers": answers, "prompt_length": len(prompt),
                "target": [item.asin for item in sample.candidates].index(sample.target)}

    def asked(self, sample: RecSample, validation: Validation) -> Asked:
        """A validation request: the prompt leaves the room the lavic generator leaves (its
        ``max_new_tokens``, or the longest scored ID + EOS), so the ids are the test's."""
        if not sample.candidates:  # nothing to ask: every pair is a miss
            return Asked([], [], (), [], sample.truths)
        answers = ([self.coder.answer(item.asin) for item in sample.candidates]
                   if validation == "score" else [])
        prompt, keys = self.prompt(sample, max(map(len, answers)) if answers else GENERATED)
        return Asked(prompt, keys, tuple(i.asin for i in sample.candidates), answers,
                     sample.truths)


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
        width = max(len(row["input_ids"]) for row in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, row in enumerate(batch):
            n = len(row["input_ids"])
            input_ids[i, :n], labels[i, :n] = torch.tensor(row["input_ids"]), torch.tensor(
                row["labels"])
            mask[i, :n] = 1
        keys = [k for row in batch for k in row["images"]]
        listwise = {name: [row[name] for row in batch] for name in
                    ("answers", "prompt_length", "target") if name in batch[0]}
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels,
                "views": self.views(keys), **listwise}


class Validator:
    """Validation HR@1 the harness's way: hits (:func:`bench.results.hit`) over (conversation,
    ground truth) pairs; an unasked conversation (no candidates) scores none of its pairs."""

    def __init__(self, asked: Sequence[Asked], collator: Collator, tokenizer: Any) -> None:
        self.asked, self.collator, self.tokenizer = list(asked), collator, tokenizer

    def choose(self, model: torch.nn.Module, asked: Asked, device: torch.device) -> Choice:
        """What ``model`` answers: the best-scored ID, or its greedy answer read by the
        paper's parser (what ``bench run --model lavic`` does with ``decoding`` generate)."""
        ids = torch.tensor([asked.prompt], device=device)
        embeds = spliced_inputs(model, ids, self.collator.views(asked.keys).to(device))
        fed = {"inputs_embeds": embeds, "attention_mask": torch.ones_like(ids)}
        if asked.answers:
            logprobs = score_continuations(model, fed, asked.answers).logprobs
            best = asked.candidates[max(range(len(asked.answers)), key=logprobs.__getitem__)]
            return Choice(best, best)
        eos = model.generation_config.eos_token_id
        eos = {self.tokenizer.eos_token_id} if eos is None else set(
            [eos] if isinstance(eos, int) else eos)
        out = model.generate(**fed, input_ids=ids, do_sample=False, max_new_tokens=GENERATED,
                             pad_token_id=self.collator.pad_id)
        new = out[0, ids.shape[1]:].tolist()
        ends = [k for k, token in enumerate(new) if token in eos]
        raw = self.tokenizer.decode(new[: ends[0] + 1] if ends else new,
                                    skip_special_tokens=True).strip()
        return parse_choice(raw, asked.candidates, rule=PAPER)

    @torch.no_grad()
    def hit_rate(self, model: torch.nn.Module, device: torch.device) -> float:
        was_training = model.training
        model.eval()
        hits = pairs = 0
        try:
            for asked in self.asked:
                pick = self.choose(model, asked, device).item_id if asked.candidates else None
                hits += sum(hit(pick, truth) for truth in asked.truths)
                pairs += len(asked.truths)
        finally:
            model.train(was_training)
        return hits / max(pairs, 1)


class FinetuneTrainer(DistillTrainer):
    """Loss on the spliced prompt; evaluation is the :class:`Validator`'s HR@1."""

    def __init__(self, *args: Any, validator: Validator, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.validator = validator

    def nll(self, inner: torch.nn.Module, inputs: dict[str, torch.Tensor],
            wrapped: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        embeds = spliced_inputs(inner, inputs["input_ids"], inputs["views"])
        if "answers" not in inputs:
            return labelled_nll(wrapped, embeds, inputs["attention_mask"], inputs["labels"])
        # listwise (batch 1): the loss is the candidates' cross-entropy, weighted by the
        # answer's token count so that compute_loss's division by tokens leaves it as is
        count = (inputs["labels"][:, 1:] != IGNORE).sum(-1).float()
        length = inputs["prompt_length"][0]
        loss = listwise_loss(wrapped, embeds[:, :length], inputs["answers"][0],
                             inputs["target"][0])
        return loss.unsqueeze(0) * count, count

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        metrics = {f"{metric_key_prefix}_{METRIC}": self.validator.hit_rate(self.model,
                                                                           self.args.device)}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control,
                                                         metrics)
        return metrics


def listwise_loss(forward: torch.nn.Module, embeds: torch.Tensor, answers: Sequence[list[int]],
                  target: int) -> torch.Tensor:
    """-log softmax over the candidates' summed ID + EOS log-likelihoods, at the target: the
    prompt runs once and its KV cache, repeated per candidate, feeds all k answers in one
    batch (as :func:`~baselines.generators.scoring.score_continuations` scores them, with
    gradients)."""
    out = forward(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2],
                  dtype=torch.long, device=embeds.device), use_cache=True, logits_to_keep=1)
    name = "cache" if "cache" in out else "past_key_values"
    first = out.logits[0, -1].float().log_softmax(-1)
    width = max(len(a) for a in answers) - 1
    totals = torch.stack([first[a[0]] for a in answers])
    if width:
        cache = out[name]
        cache.batch_repeat_interleave(len(answers))
        rows = torch.tensor([a[:-1] + [a[0]] * (width - len(a) + 1) for a in answers],
                            device=embeds.device)
        mask = torch.ones((len(answers), embeds.shape[1] + width), dtype=torch.long,
                          device=embeds.device)
        logp = forward(input_ids=rows, attention_mask=mask, use_cache=True,
                       **{name: cache}).logits.float().log_softmax(-1)
        later = [logp[k, torch.arange(len(a) - 1), torch.tensor(a[1:])].sum()
                 for k, a in enumerate(answers)]
        totals = totals + torch.stack(later)
    return -totals.log_softmax(-1)[target]


#: what each validation protocol asks, for result.json
VALIDATION = {
    "generate": f"the split's candidate lists as shipped (top k, shown in bench run's order), "
                f"greedy answers of at most {GENERATED} new tokens read by the {PAPER} parser, "
                "HR@1 over (conversation, ground truth) pairs: the test's protocol",
    "score": "the ground truth inserted among k candidates, the best-scored ID + EOS, "
             "HR@1 over (conversation, ground truth) pairs: faster, easier than the test",
}


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


def _check_variant(config: FinetuneConfig, stage1: Path | None) -> None:
    if config.variant == "lavic" and stage1 is None:
        raise BenchError("variant lavic needs the stage-1 output folder", where="lavic finetune",
                         hint="pass --stage1 DIR, or use variant no-distill")
    if config.variant != "lavic" and stage1 is not None:
        raise BenchError(f"variant {config.variant} takes no stage-1 adapter",
                         where="lavic finetune", hint="leave out --stage1")


def _refuse_new_stage1(out: Path, stage1: str) -> None:
    """A folder fine-tuned on another stage 1 is never resumed on this one."""
    if not (out / checkpoint.SPEC_FILE).is_file():
        return
    old = checkpoint.read_spec(out, "finetune").get("stage1")
    if old != stage1:
        raise BenchError(
            f"stage 1 changed since this stage-2 run (was {str(old)[:12]}, now {stage1[:12]})",
            where=str(out), hint="fine-tune into a new output folder")


def finetune(
    model: torch.nn.Module,
    tokenizer: Any,
    train: Sequence[RecSample],
    valid: Sequence[RecSample],
    out: Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    stage1: Path | None = None,
    cache_dir: Path,
    base_identity: str = "",
    callbacks: Sequence[TrainerCallback] = (),
) -> dict[str, Any]:
    """Train stage 2 into ``out`` (resuming its last checkpoint if any) on ``model`` (the base
    weights) plus the stage-1 run in ``stage1``; the best adapter by validation HR@1 is saved
    under ``out/adapter``. ``valid``: :func:`samples_as_tested` for ``generate`` validation
    (the test's lists), :func:`samples` for ``score``. Returns the spec plus the best HR@1 and
    checkpoint."""
    if not train or not valid:
        raise BenchError("stage 2 needs training and validation conversations",
                         where="lavic finetune", hint="check the splits and candidate lists")
    _check_variant(config, stage1)
    stage1_id = checkpoint.stage1_hash(stage1)
    _refuse_new_stage1(out, stage1_id)
    model = place(model, config)  # before the cache fill, the first forward
    if stage1 is not None:
        model = checkpoint.merge_adapter(model, stage1 / checkpoint.ADAPTER_DIR)
    base = llava(model)
    hidden = int(base.config.text_config.hidden_size)
    placeholder = tokenizer.convert_ids_to_tokens(base.config.image_token_index)
    cache = image_rows(config, base.config, cache_dir, base=base_identity, stage1=stage1_id,
                       tokenizer=tokenizer)
    if cache is not None:
        cache.fill_paths(model, (i.image_path for s in (*train, *valid) for i in s.candidates),
                         config.embed_batch_size)
    encoder = Encoder(RecPrompt(tokenizer, placeholder, slots(config), config.max_length),
                      cache, config.objective)
    train_rows = [encoder.row(s) for s in train]
    asked = [encoder.asked(s, config.validation) for s in valid]
    spec = {"stage": "finetune", "base": base_identity, "stage1": stage1_id,
            "config": config.model_dump(mode="json"), "train": rows_hash(train_rows),
            "valid": rows_hash(asked)}
    write_spec(out, spec, what="stage-2")
    checkpoint.keep_stage1(stage1, out)
    set_seed(config.seed)  # LoRA's initial weights
    peft_model = stage2(model, config.lora)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else \
        tokenizer.eos_token_id
    collator = Collator(pad, cache, hidden)
    trainer = FinetuneTrainer(
        model=peft_model, args=training_arguments(out, config, metric=METRIC, greater=True),
        data_collator=collator, train_dataset=train_rows, eval_dataset=asked,
        callbacks=list(callbacks), vision_layer=config.vision_layer,
        validator=Validator(asked, collator, tokenizer))
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(out)))
    trainer.save_model(str(out / checkpoint.ADAPTER_DIR))
    state = trainer.state
    result = {**spec, "best_hr@1": state.best_metric,
              "best_checkpoint": Path(state.best_model_checkpoint or "").name,
              "validation": VALIDATION[config.validation]}
    if trainer.is_world_process_zero():
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
