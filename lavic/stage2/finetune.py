"""Stage 2, recommendation fine-tuning: answer the Table 11 prompt with the ground truth's ID.

The stage-1 adapter is merged into the base weights and the whole vision side, projector
included, stays frozen; LoRA adapts the LLM's attention and MLP projections only. Every
candidate image's view embeddings are computed once into the image cache (:mod:`lavic.store`)
before training, so training reads rows and never runs the vision tower. The rows are
:mod:`lavic.stage2.rows`' (exactly the ids the ``lavic`` generator feeds); the loss covers the
ID tokens and end-of-sequence only. Training is :mod:`lavic.training`'s ``Trainer``
(checkpoints, resume, accumulation, bf16, gradient checkpointing, data-parallel as in stage 1);
the epoch kept is the one with the best validation HR@1 (the authors' validation loss is NaN).
Validation asks what the test asks by default (``generate``: the raw candidate lists, greedy
answers read by the paper's parser, hits over (conversation, ground truth) pairs); ``score``
ranks the candidates' IDs with the ground truth inserted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, set_seed

from baselines.generators.chat import ChatTurn
from baselines.generators.scoring import score_continuations
from bench.core.errors import BenchError
from bench.results.frames import hit
from bench.task.parser import PAPER, parse_choice
from bench.task.protocols import Choice
from lavic.model.embed import llava, spliced_inputs
from lavic.model.lora import stage2
from lavic.stage2.config import GENERATED, FinetuneConfig, image_rows, slots
from lavic.stage2.examples import RecExample
from lavic.stage2.prompt import RecPrompt
from lavic.stage2.rows import Asked, Collator, RowBuilder, rows_hash
from lavic.store import checkpoint
from lavic.training import (
    IGNORE,
    NllTrainer,
    labelled_nll,
    pad_id,
    place,
    train_and_save,
    training_arguments,
    write_spec,
)

METRIC = "hr@1"


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


class FinetuneTrainer(NllTrainer):
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
    train: Sequence[RecExample],
    valid: Sequence[RecExample],
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
    under ``out/adapter``. ``valid``: :func:`~lavic.stage2.examples.as_tested` examples for
    ``generate`` validation (the test's lists), training-like ones for ``score``. Returns the
    spec plus the best HR@1 and checkpoint."""
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
    placeholder = tokenizer.convert_ids_to_tokens(base.config.image_token_index)
    cache = image_rows(config, base.config, cache_dir, base=base_identity, stage1=stage1_id,
                       tokenizer=tokenizer)
    if cache is not None:
        cache.fill_paths(model, (i.image_path for s in (*train, *valid) for i in s.candidates),
                         config.embed_batch_size)
    builder = RowBuilder(RecPrompt(ChatTurn(tokenizer), placeholder, slots(config),
                                   config.max_length), cache, config.objective)
    train_rows = [builder.row(s) for s in train]
    asked = [builder.asked(s, config.validation) for s in valid]
    spec = {"stage": "finetune", "base": base_identity, "stage1": stage1_id,
            "config": config.model_dump(mode="json"), "train": rows_hash(train_rows),
            "valid": rows_hash(asked)}
    write_spec(out, spec, what="stage-2")
    checkpoint.keep_stage1(stage1, out)
    set_seed(config.seed)  # LoRA's initial weights
    peft_model = stage2(model, config.lora)
    collator = Collator(pad_id(tokenizer), cache, int(base.config.text_config.hidden_size))
    trainer = FinetuneTrainer(
        model=peft_model, args=training_arguments(out, config, metric=METRIC, greater=True),
        data_collator=collator, train_dataset=train_rows, eval_dataset=asked,
        callbacks=list(callbacks), validator=Validator(asked, collator, tokenizer))
    return train_and_save(trainer, out, {**spec, "validation": VALIDATION[config.validation]},
                          METRIC)
