"""Device and dtype chosen once: every command loads the model straight onto its device in its
dtype and runs no forward before; the view cache streams images; the input pipeline runs in
DataLoader workers with the same result."""

from __future__ import annotations

import gc
import json
import math
import pickle
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch.utils.data import DataLoader
from transformers import LlavaNextForConditionalGeneration
from typer.testing import CliRunner

import lavic.store.viewcache
from bench.cli import app
from bench.core.errors import BenchError
from bench.task.data.synthetic import synthesize
from lavic.cli import load_base
from lavic.model.embed import embed_images, llava
from lavic.model.tiny import tiny_folder, tiny_model
from lavic.model.views import ViewMaker
from lavic.settings import placement
from lavic.stage1.distill import Collator, DistillConfig, distill
from lavic.stage2.finetune import finetune
from lavic.store.viewcache import ViewCache
from lavic.training import training_arguments
from tests.lavic.conftest import IMAGE, examples
from tests.lavic.stage2_world import FAST as FAST2
from tests.lavic.stage2_world import world as stage2_world

WATCHED = ("CLIPVisionModel", "LlavaNextMultiModalProjector", "MistralModel")
BF16 = {"torch.bfloat16"}
FAST = DistillConfig(batch_size=2, max_steps=2, eval_steps=1, learning_rate=1e-2,
                     max_length=512, seed=3, device="cpu", dtype="bf16")


class FirstCalls:
    """Spies on ``from_pretrained``: its keyword arguments, and for the vision tower, the
    projector and the LLM of every model it returns, the dtypes of their weights and floating
    inputs at their first forward (hooks set before the model leaves ``from_pretrained``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loads: list[dict[str, Any]] = []
        self.first: dict[str, set[str]] = {}
        original = LlavaNextForConditionalGeneration.from_pretrained

        def spy(*args: Any, **kwargs: Any) -> Any:
            model = original(*args, **kwargs)
            self.loads.append(kwargs)
            for module in model.modules():
                if type(module).__name__ in WATCHED:
                    module.register_forward_pre_hook(self.hook, with_kwargs=True)
            return model

        monkeypatch.setattr(LlavaNextForConditionalGeneration, "from_pretrained", spy)

    def hook(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> None:
        name = type(module).__name__
        if name not in self.first:
            floats = [t for t in (*args, *kwargs.values())
                      if isinstance(t, torch.Tensor) and t.is_floating_point()]
            assert floats, name
            self.first[name] = {str(next(module.parameters()).dtype),
                                *(str(t.dtype) for t in floats)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    tiny_folder(out)
    return out


def test_auto_is_resolved_once_and_only_the_dtype_is_the_run_identity() -> None:
    auto = DistillConfig(device="cpu", workers=2)
    assert auto.dtype == "fp32"  # the CPU's auto, written into the spec as such
    dumped = auto.model_dump(mode="json")
    assert dumped["dtype"] == "fp32" and "device" not in dumped and "workers" not in dumped
    args = training_arguments(Path("unused"), FAST.model_copy(update={"workers": 2}))
    assert (args.bf16, args.fp16, args.use_cpu, args.dataloader_num_workers) == (
        True, False, True, 2)
    fp32 = training_arguments(Path("unused"), auto)
    assert (fp32.bf16, fp32.fp16, fp32.dataloader_num_workers) == (False, False, 2)


def test_a_gpu_of_a_data_parallel_process_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert placement("cuda", "bf16") == (torch.device("cuda", 1), torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BenchError, match="device 'cuda' is not available"):
        DistillConfig(device="cuda")


def test_distill_runs_bf16_from_the_first_forward(monkeypatch: pytest.MonkeyPatch, tiny: Path,
                                                  tmp_path: Path) -> None:
    calls = FirstCalls(monkeypatch)
    tokenizer, model = load_base(str(tiny), FAST)
    assert calls.loads == [{"dtype": torch.bfloat16, "device_map": "cpu"}]
    train, valid = examples(tmp_path / "img", 4), examples(tmp_path / "val", 2, seed=1)
    result = distill(model, tokenizer, train, valid, tmp_path / "out", FAST)
    assert calls.first == dict.fromkeys(WATCHED, BF16)
    assert math.isfinite(result["best_perplexity"])
    params = dict(llava(model).named_parameters())
    assert {p.dtype for n, p in params.items() if "lora_" not in n} == {torch.bfloat16}
    assert {p.dtype for n, p in params.items() if "lora_" in n} == {torch.float32}  # peft's
    assert any(p.abs().sum() > 0 for n, p in params.items() if "lora_B" in n)  # it trained
    spec = json.loads((tmp_path / "out" / "spec.json").read_text())
    assert spec["config"]["dtype"] == "bf16" and "device" not in spec["config"]
    with pytest.raises(BenchError, match="holds a different stage-1 run"):
        distill(tiny_model(vocab_size=len(tokenizer)), tokenizer, train, valid,
                tmp_path / "out", FAST.model_copy(update={"dtype": "fp32"}))


def test_finetune_fills_its_cache_in_bf16_from_the_first_forward(
        monkeypatch: pytest.MonkeyPatch, tiny: Path, tmp_path: Path) -> None:
    train, valid = stage2_world(tmp_path / "release")
    config = FAST2.model_copy(update={"variant": "no-distill", "max_steps": 1,
                                      "device": "cpu", "dtype": "bf16"})
    calls = FirstCalls(monkeypatch)
    tokenizer, model = load_base(str(tiny), config)
    finetune(model, tokenizer, train, valid, tmp_path / "out", config,
             cache_dir=tmp_path / "cache")
    assert calls.loads[0]["dtype"] is torch.bfloat16
    assert calls.first == dict.fromkeys(WATCHED, BF16)  # the tower's first call: the fill
    shards = list((tmp_path / "cache").rglob("*.safetensors"))
    assert shards
    for shard in shards:
        with safe_open(shard, framework="pt") as fh:
            assert fh.get_slice("vectors").get_dtype() == "BF16"


def test_describe_runs_bf16_and_workers_change_nothing(monkeypatch: pytest.MonkeyPatch,
                                                       tiny: Path, tmp_path: Path) -> None:
    data = synthesize(tmp_path / "world", seed=0, size="small")
    calls = FirstCalls(monkeypatch)
    answers = []
    for workers in (0, 1):
        out = tmp_path / f"w{workers}"
        result = CliRunner().invoke(app, [
            "lavic", "describe", "--data-dir", str(data), "--model-path", str(tiny), "--out",
            str(out), "--limit", "2", "--batch-size", "3", "--dtype", "bf16", "--workers",
            str(workers)], prog_name="bench")
        assert result.exit_code == 0, result.output
        assert result.stderr.count("described 4 new image(s)") == 1  # once, not per batch
        answers.append(json.loads((out / "descriptions.json").read_text()))
        if workers == 0:
            assert calls.loads == [{"dtype": torch.bfloat16, "device_map": "cpu"}]
            assert calls.first == dict.fromkeys(WATCHED, BF16)
    assert answers[0]["train"] and answers[0] == answers[1]


def test_filling_reads_one_batch_of_images_at_a_time(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    paths = [ex.image for ex in examples(tmp_path / "img", 7)]
    alive: list[weakref.ref[Any]] = []
    decoded = lavic.store.viewcache.load_image

    def load(path: Path | None) -> Any:
        image, data = decoded(path)
        alive.append(weakref.ref(image))
        return image, data

    open_at_embed: list[int] = []

    def embed(*args: Any, **kwargs: Any) -> torch.Tensor:
        gc.collect()
        open_at_embed.append(sum(ref() is not None for ref in alive))
        return embed_images(*args, **kwargs)

    monkeypatch.setattr(lavic.store.viewcache, "load_image", load)
    monkeypatch.setattr(lavic.store.viewcache, "embed_images", embed)
    model = tiny_model(vocab_size=40, projector_std=1.0).to(torch.bfloat16)
    maker = ViewMaker(model.config)
    cache = ViewCache(tmp_path / "cache", base="b", stage1="none", views=maker, layer=-1,
                      hidden=32)
    assert cache.fill_paths(model, paths, batch_size=2) == 7
    assert open_at_embed == [2, 2, 2, 1] and len(alive) == 7  # never the whole catalog
    rows = cache.read([cache.key_of(p) for p in paths])
    assert rows.dtype == torch.bfloat16 and rows.shape == (7, 5, 32)
    want = embed_images(model, [decoded(p)[0] for p in paths], maker, dtype=torch.bfloat16)
    assert torch.equal(rows, want)
    # a float32 vision side gets its own rows: other numbers, never served the bf16 ones
    fp32 = ViewCache(tmp_path / "cache", base="b", stage1="none", views=maker, layer=-1,
                     hidden=32)
    assert fp32.fill_paths(model.float(), paths[:3], batch_size=2) == 3
    assert fp32.read([fp32.key_of(paths[0])]).dtype == torch.float32


def test_the_collator_gives_the_same_batches_in_a_worker(tokenizer, tmp_path: Path) -> None:
    model = tiny_model(vocab_size=len(tokenizer))
    collator = Collator(tokenizer, ViewMaker(model.config), model.config.image_token_index,
                        max_length=512)
    data = examples(tmp_path / "img", 4)
    assert IMAGE in collator.slots
    copy = pickle.loads(pickle.dumps(collator))  # what a spawned worker receives
    here = [collator(data[i:i + 2]) for i in (0, 2)]
    there = list(DataLoader(data, batch_size=2, num_workers=1, collate_fn=copy))
    for a, b in zip(here, there, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
