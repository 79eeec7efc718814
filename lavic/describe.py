"""The full-token model describes each image with the paper's Table 10 prompt (greedy, at most
128 new tokens): the targets of stage 1.

Every answer is appended to ``cache.jsonl`` (fsync'd per batch) under the sha256 of (model
identity, image hash, title, prompt, decoding settings), so a killed run loses at most one
batch and a re-run, or another run with the same model, asks nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, LlavaNextForConditionalGeneration

from bench.data.release import read_jsonl
from bench.errors import BenchError, Warnings
from bench.images import read_image
from bench.models import weights_identity
from lavic.data import Target
from lavic.distill import image_hash
from lavic.prompts import describe_prompt, render

MAX_NEW_TOKENS = 128
CACHE_FILE = "cache.jsonl"
LOAD_HINT = ("pass --model-path DIR holding a LLaVA-NeXT save_pretrained folder "
             "(`bench lavic tiny --out DIR` writes a tiny one)")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(name_or_path: str) -> tuple[LlavaNextForConditionalGeneration, Any, str]:
    """(model in eval mode, processor, weights identity); bf16 on a GPU."""
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(name_or_path)
        model = LlavaNextForConditionalGeneration.from_pretrained(name_or_path, dtype=dtype)
    except (OSError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot load the model: {first}", where=name_or_path,
                         hint=LOAD_HINT) from None
    identity = weights_identity(name_or_path)
    if identity is None:
        raise BenchError("the model's files are not on this machine", where=name_or_path,
                         hint=LOAD_HINT)
    return model.to(device()).eval(), processor, identity


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


def cache_key(identity: str, target: Target, prompt: str) -> str:
    payload = [identity, image_hash(target.image), target.title, prompt,
               {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS}]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def describe(
    targets: Sequence[Target],
    name_or_path: str,
    out: Path,
    *,
    batch_size: int = 4,
    warnings: Warnings,
    progress: Callable[[int], None] = lambda done: None,
) -> tuple[list[tuple[Target, str]], str]:
    """(target, description) for each usable image, and the model identity. An unreadable
    image is a counted warning and gets no description."""
    model, processor, identity = load_model(name_or_path)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    cache = DescriptionCache(out / CACHE_FILE, warnings)
    keyed: list[tuple[Target, str, str]] = []
    special = True
    for target in targets:
        text, special = render(tokenizer, describe_prompt(target.title, processor.image_token))
        keyed.append((target, text, cache_key(identity, target, text)))
    todo = [entry for entry in keyed if entry[2] not in cache.known]
    unusable: set[str] = set()
    for start in range(0, len(todo), batch_size):
        batch = []
        for target, text, key in todo[start:start + batch_size]:
            image = read_image(target.image)
            if image.image is None:
                warnings.add("bad_image", f"{image.problem}; not described",
                             where=str(target.image))
                unusable.add(key)
                continue
            batch.append((image.image, text, key))
        if batch:
            texts = generate(model, processor, batch, special_tokens=special)
            cache.add(list(zip([k for *_, k in batch], texts, strict=True)))
        progress(min(start + batch_size, len(todo)))
    done = [(t, cache.known[k]) for t, _, k in keyed if k not in unusable]
    return done, identity


@torch.inference_mode()
def generate(model: LlavaNextForConditionalGeneration, processor: Any,
             batch: Sequence[tuple[Any, str, str]], *, special_tokens: bool) -> list[str]:
    """Greedy descriptions of one batch of (image, rendered prompt, key)."""
    images, texts = [b[0] for b in batch], [b[1] for b in batch]
    inputs = processor(images=images, text=texts, padding=True, return_tensors="pt",
                       add_special_tokens=special_tokens).to(model.device)
    pad = processor.tokenizer.pad_token_id
    output = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                            pad_token_id=processor.tokenizer.eos_token_id if pad is None
                            else pad)
    new = output[:, inputs["input_ids"].shape[1]:]
    return [text.strip() for text in
            processor.tokenizer.batch_decode(new, skip_special_tokens=True)]
