"""A LaViC checkpoint: base weights + merged stage-1 adapter + stage-2 adapter, as a chain of
specs whose hashes must agree.

Stage 2 copies the stage-1 adapter it was trained on into its own folder (``stage1/``) and
records that adapter's hash in its ``spec.json``, so a stage-2 folder is self-contained and a
retrained stage 1 can never be mixed with a stage 2 trained on the old one: fine-tuning into
the folder again, or loading a folder whose copy was replaced, is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from bench.core.errors import BenchError

SPEC_FILE = "spec.json"
ADAPTER_DIR = "adapter"  # the best adapter of a stage, beside its spec
STAGE1_COPY = "stage1"  # in a stage-2 folder: the stage-1 adapter it was trained on
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
NO_STAGE1 = "none"


def adapter_hash(folder: Path) -> str:
    """sha256 over a saved peft adapter's config and weights."""
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        try:
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
        except OSError as err:
            raise BenchError(f"no adapter here ({name}: {err.strerror})", where=str(folder),
                             hint="point at a finished stage's output folder") from err
    return digest.hexdigest()


def read_spec(folder: Path, stage: str) -> dict[str, Any]:
    """The ``spec.json`` of a finished ``stage`` (distill / finetune) output folder."""
    path = folder / SPEC_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BenchError(f"no readable {SPEC_FILE} ({err})", where=str(folder),
                         hint=f"point at the output folder of `bench lavic {stage}`") from err
    if not isinstance(spec, dict) or spec.get("stage") != stage:
        raise BenchError(f"not a {stage} output folder", where=str(path),
                         hint=f"point at the output folder of `bench lavic {stage}`")
    return spec


def stage1_hash(stage1: Path | None) -> str:
    """The identity of a finished stage-1 run (its best adapter), or ``none``."""
    if stage1 is None:
        return NO_STAGE1
    read_spec(stage1, "distill")
    return adapter_hash(stage1 / ADAPTER_DIR)


def keep_stage1(stage1: Path | None, out: Path) -> None:
    """Copy the stage-1 adapter into the stage-2 folder (replacing an older copy)."""
    if stage1 is None:
        return
    target = out / STAGE1_COPY
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ADAPTER_FILES:
        shutil.copyfile(stage1 / ADAPTER_DIR / name, target / name)


def merge_adapter(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """``model`` with the adapter in ``folder`` merged into its weights."""
    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()


def load_finetuned(model: torch.nn.Module, checkpoint: Path) -> tuple[torch.nn.Module,
                                                                      dict[str, Any]]:
    """``model`` (the base weights) with both stages merged, in eval mode, and the stage-2
    spec; a stage-1 copy that is not the one stage 2 was trained on is refused."""
    spec = read_spec(checkpoint, "finetune")
    if spec["stage1"] != NO_STAGE1:
        found = adapter_hash(checkpoint / STAGE1_COPY)
        if found != spec["stage1"]:
            raise BenchError(
                f"the stage-1 adapter (sha256 {found[:12]}) is not the one this stage 2 was "
                f"trained on ({spec['stage1'][:12]})", where=str(checkpoint / STAGE1_COPY),
                hint="fine-tune again on the new stage 1")
        model = merge_adapter(model, checkpoint / STAGE1_COPY)
    return merge_adapter(model, checkpoint / ADAPTER_DIR).eval(), spec


def identity(checkpoint: Path) -> str:
    """What a checkpoint's answers depend on besides the base weights: both adapters and
    the stage-2 settings (views, vision layer, variant ...)."""
    spec = read_spec(checkpoint, "finetune")
    settings = json.dumps(spec["config"], sort_keys=True)
    return (f"stage1={spec['stage1']};stage2={adapter_hash(checkpoint / ADAPTER_DIR)};"
            f"settings={hashlib.sha256(settings.encode()).hexdigest()[:16]}")
