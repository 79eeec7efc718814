"""The full-token model describes each image with the paper's Table 10 prompt (greedy, at most
128 new tokens): what stage 1 teaches the view embeddings to say.

Every answer is appended to ``cache.jsonl`` (fsync'd per batch) under the sha256 of (model
identity, image hash, title, prompt, decoding settings), so a killed run loses at most one
batch and a re-run, or another run with the same model, asks nothing twice. Images are read
and put through the processor in DataLoader workers (``workers``), so the model generates on
the main thread without waiting for JPEG decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import AutoProcessor, BatchFeature, LlavaNextForConditionalGeneration

from baselines.generators.chat import ChatTurn
from bench.core.errors import BenchError, Warnings
from bench.core.weights import weights_identity
from bench.execution import progress as bars
from bench.task.data.release import read_jsonl
from bench.task.images import read_image
from lavic.settings import placement
from lavic.stage1.data import ImageToDescribe, image_hash
from lavic.stage1.prompt import describe_prompt

MAX_NEW_TOKENS = 128
CACHE_FILE = "cache.jsonl"
LOAD_HINT = ("pass --model-path DIR holding a LLaVA-NeXT save_pretrained folder "
             "(`bench lavic tiny --out DIR` writes a tiny one)")


def load_model(name_or_path: str, device: str = "auto", dtype: str = "auto"
               ) -> tuple[LlavaNextForConditionalGeneration, Any, str]:
    """(model in eval mode, loaded straight onto ``device`` in ``dtype``, processor, weights
    identity); ``auto``: cuda in bf16 when there is one, else the CPU in float32."""
    chosen, torch_dtype = placement(device, dtype)
    try:
        processor = AutoProcessor.from_pretrained(name_or_path)
        model = LlavaNextForConditionalGeneration.from_pretrained(
            name_or_path, dtype=torch_dtype, device_map=str(chosen))
    except (OSError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot load the model: {first}", where=name_or_path,
                         hint=LOAD_HINT) from None
    identity = weights_identity(name_or_path)
    if identity is None:
        raise BenchError("the model's files are not on this machine", where=name_or_path,
                         hint=LOAD_HINT)
    return model.eval(), processor, identity


class DescriptionCache:
    """key -> description, from an append-only JSON-lines file; unreadable lines are counted
    warnings (those images are described again)."""

    def __init__(self, path: Path, warnings: Warnings) -> None:
        self.path = path
        self.known: dict[str, str] = {}
        if path.is_file():
            for line in read_jsonl(path):
                record = line.record or {}
                if not isinstance(record.get("key"), str) or not isinstance(
                        record.get("description"), str):
                    warnings.add("bad_cache_line", "unreadable; described again",
                                 where=line.where)
                    continue
                self.known[record["key"]] = record["description"]

    def add(self, entries: Sequence[tuple[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            for key, text in entries:
                fh.write(json.dumps({"key": key, "description": text}, ensure_ascii=False)
                         + "\n")
                self.known[key] = text
            fh.flush()
            os.fsync(fh.fileno())


def cache_key(identity: str, image: ImageToDescribe, prompt: str, dtype: torch.dtype) -> str:
    """The answer's key: the model's dtype is in it (bf16 decodes other words than fp32),
    its device is not."""
    payload = [identity, image_hash(image.image), image.title, prompt,
               {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS, "dtype": str(dtype)}]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


@dataclass
class Prepared:
    """One batch as the model takes it, and what could not be read."""

    keys: list[str]
    inputs: BatchFeature | None  # None: no readable image in the batch
    unreadable: list[tuple[str, str, str]]  # (key, image file, problem)
    size: int  # images asked for, readable or not


class Batches(Dataset[Prepared]):
    """The images left to describe, ``batch_size`` per item: read and run through the
    processor wherever the DataLoader calls it (a worker process with ``workers`` > 0)."""

    def __init__(self, todo: Sequence[tuple[ImageToDescribe, str, str]], processor: Any,
                 batch_size: int, turn: ChatTurn) -> None:
        self.todo, self.processor, self.batch_size = todo, processor, batch_size
        self.turn = turn

    def __len__(self) -> int:
        return -(-len(self.todo) // self.batch_size)

    def __getitem__(self, index: int) -> Prepared:
        rows = self.todo[index * self.batch_size:(index + 1) * self.batch_size]
        images, texts, keys, unreadable = [], [], [], []
        for wanted, text, key in rows:
            found = read_image(wanted.image)
            if found.image is None:
                unreadable.append((key, str(wanted.image), str(found.problem)))
                continue
            images.append(found.image)
            texts.append(text)
            keys.append(key)
        inputs = self.processor(images=images, text=texts, padding=True, return_tensors="pt",
                                add_special_tokens=self.turn.special_tokens(texts[0])
                                ) if images else None
        return Prepared(keys, inputs, unreadable, len(rows))


def as_is(batch: Prepared) -> Prepared:
    """The DataLoader's collate function: a :class:`Batches` item is a batch already."""
    return batch


def describe(
    images: Sequence[ImageToDescribe],
    name_or_path: str,
    out: Path,
    *,
    batch_size: int = 4,
    workers: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    warnings: Warnings,
    progress: Callable[[int], None] = lambda described: None,
) -> tuple[list[tuple[ImageToDescribe, str]], str]:
    """(image, description) for each usable image, and the model identity. An unreadable
    image is a counted warning and gets no description. One progress bar on stderr while it
    runs; ``progress`` is called once at the end with the number of newly described images."""
    model, processor, identity = load_model(name_or_path, device, dtype)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    cache = DescriptionCache(out / CACHE_FILE, warnings)
    turn = ChatTurn(tokenizer)
    keyed: list[tuple[ImageToDescribe, str, str]] = []
    for wanted in images:
        text = turn.render(describe_prompt(wanted.title, processor.image_token))
        keyed.append((wanted, text, cache_key(identity, wanted, text, model.dtype)))
    todo = [entry for entry in keyed if entry[2] not in cache.known]
    unusable: set[str] = set()
    loader = DataLoader(Batches(todo, processor, batch_size, turn), batch_size=None,
                        num_workers=workers, collate_fn=as_is)
    with bars.bar(total=len(todo), desc="describing", unit="image", quiet=not todo) as bar:
        for batch in loader:
            for key, image, problem in batch.unreadable:
                warnings.add("bad_image", f"{problem}; not described", where=image)
                unusable.add(key)
            if batch.inputs is not None:
                cache.add(list(zip(batch.keys, generate(model, processor, batch.inputs),
                                   strict=True)))
            bar.update(batch.size)
    if todo:
        progress(len(todo) - len(unusable))
    done = [(t, cache.known[k]) for t, _, k in keyed if k not in unusable]
    return done, identity


@torch.inference_mode()
def generate(model: LlavaNextForConditionalGeneration, processor: Any,
             inputs: BatchFeature) -> list[str]:
    """Greedy descriptions of one processed batch, on the model's device in its dtype."""
    inputs = inputs.to(model.device, dtype=model.dtype)
    pad = processor.tokenizer.pad_token_id
    output = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                            pad_token_id=processor.tokenizer.eos_token_id if pad is None
                            else pad)
    new = output[:, inputs["input_ids"].shape[1]:]
    return [text.strip() for text in
            processor.tokenizer.batch_decode(new, skip_special_tokens=True)]
