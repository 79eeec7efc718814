"""What stage 1 (:mod:`lavic.stage1.distill`) and stage 2 (:mod:`lavic.stage2.finetune`) train
with: transformers' ``Trainer`` on a peft model, a loss on labelled tokens only, the Trainer's
settings, the frozen ``spec.json`` of a run and its ``result.json``.

Training is ``Trainer``, so checkpoints hold only the adapter, and ``resume_from_checkpoint``,
gradient accumulation, bf16, gradient checkpointing and ``accelerate launch`` come with it.
Inference never imports this module (an import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from bench.core.errors import BenchError
from bench.execution.store import write_json_atomic
from lavic.settings import TrainingConfig, placement
from lavic.store.checkpoint import ADAPTER_DIR, SPEC_FILE

IGNORE = -100  # the label of a token the loss skips (the prompt, padding)
RESULT_FILE = "result.json"


def place(model: torch.nn.Module, config: TrainingConfig) -> torch.nn.Module:
    """``model`` on the config's device in its dtype, before any forward (a no-op for a model
    loaded there, as ``bench lavic`` loads it)."""
    device, dtype = placement(config.device, config.dtype)
    return model.to(device=device, dtype=dtype)


def pad_id(tokenizer: Any) -> int:
    """The id a batch is padded with: the tokenizer's pad token, else end-of-sequence."""
    return tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id


def pad_rows(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad: int
             ) -> dict[str, torch.Tensor]:
    """(input ids, labels) rows right-padded into ``input_ids``, ``attention_mask`` and
    ``labels`` (padding is never labelled)."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def labelled_nll(forward: torch.nn.Module, embeds: torch.Tensor, attention_mask: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed NLL of the labelled tokens given input embeddings, and their counts;
    logits are computed only at positions that predict a label."""
    target = labels[:, 1:]
    positions = (target != IGNORE).any(dim=0).nonzero()[:, 0]
    logits = forward(inputs_embeds=embeds, attention_mask=attention_mask,
                     logits_to_keep=positions, use_cache=False).logits
    target = target[:, positions]
    keep = target != IGNORE
    per_token = F.cross_entropy(logits[keep].float(), target[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    size = target.shape[0]
    nll = torch.zeros(size, device=per_token.device).index_add(0, rows, per_token)
    count = torch.zeros(size, device=per_token.device).index_add(
        0, rows, torch.ones_like(per_token))
    return nll, count


class NllTrainer(Trainer):
    """``Trainer`` whose loss is the token-weighted NLL of :meth:`nll` (each stage says how a
    batch becomes input embeddings); evaluation can return (nll, count) per example so that
    perplexity is weighted by tokens, not by batches."""

    def nll(self, inner: torch.nn.Module, inputs: dict[str, torch.Tensor],
            wrapped: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (NLL, labelled tokens) of a batch; ``wrapped`` (the data-parallel
        wrapper, when there is one) runs the LLM so that gradients are synchronised."""
        raise NotImplementedError

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor],
                     return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        nll, count = self.nll(self.accelerator.unwrap_model(model), inputs, model)
        if num_items_in_batch is None:  # Trainer then divides by the accumulation steps
            loss = nll.sum() / count.sum().clamp(min=1)
        else:  # the token count of all accumulated (and, averaged, all processes') batches
            loss = nll.sum() / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        if return_outputs:
            return loss, {"loss": loss, "nll": torch.stack([nll.detach(), count], dim=-1)}
        return loss


# transformers 5.23 renamed it (the old name warns); the floor, 5.0, knows only the old one
CHECKPOINTING = ("activation_checkpointing"
                 if "activation_checkpointing" in {f.name for f in fields(TrainingArguments)}
                 else "gradient_checkpointing")


def training_arguments(out: Path, config: TrainingConfig, *, metric: str = "perplexity",
                       greater: bool = False) -> TrainingArguments:
    """The Trainer's settings. The weights are in ``config.dtype`` already; bf16 / fp16 add
    autocast for peft's float32 LoRA weights (and fp16 its loss scaling). ``use_cpu`` keeps a
    CPU run off any GPU and, under torchrun on a CPU-only machine, forms a gloo group (without
    it every process would train on all the data)."""
    every = "epoch" if config.eval_steps is None else "steps"
    device = placement(config.device, config.dtype)[0]
    return TrainingArguments(
        output_dir=str(out), seed=config.seed, data_seed=config.seed,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, weight_decay=config.weight_decay,
        lr_scheduler_type="constant", max_grad_norm=1.0,
        num_train_epochs=config.epochs, max_steps=config.max_steps,
        eval_strategy=every, save_strategy=every,
        eval_steps=config.eval_steps, save_steps=config.eval_steps,
        load_best_model_at_end=True, metric_for_best_model=metric,
        greater_is_better=greater, save_total_limit=2,
        label_names=["labels"], remove_unused_columns=False,
        bf16=config.dtype == "bf16", fp16=config.dtype == "fp16",
        **{CHECKPOINTING: config.gradient_checkpointing},
        logging_steps=1, report_to=[], dataloader_num_workers=config.workers,
        use_cpu=device.type == "cpu",
    )


def write_spec(out: Path, spec: dict[str, Any], what: str = "stage-1") -> None:
    """Record what this run is; refuse to resume a folder that holds a different run."""
    path = out / SPEC_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old != spec:
            raise BenchError(f"the output folder holds a different {what} run", where=str(path),
                             hint="use a new output folder or delete this one")
        return
    # atomic: data-parallel processes all write the same spec and may read each other's
    write_json_atomic(path, spec)


def train_and_save(trainer: Trainer, out: Path, result: dict[str, Any], metric: str
                   ) -> dict[str, Any]:
    """Train (resuming ``out``'s last checkpoint if any), save the best adapter under
    ``out/adapter`` and return ``result`` plus ``best_{metric}`` and the best checkpoint,
    also written to ``out/result.json`` by the main process."""
    trainer.train(resume_from_checkpoint=get_last_checkpoint(str(out)))
    trainer.save_model(str(out / ADAPTER_DIR))
    state = trainer.state
    result = {**result, f"best_{metric}": state.best_metric,
              "best_checkpoint": Path(state.best_model_checkpoint or "").name}
    if trainer.is_world_process_zero():
        write_json_atomic(out / RESULT_FILE, result)
    return result
