"""The ``lavic`` generator: `bench run --model lavic --checkpoint DIR` in both decodings, the
prompt stage 2 trained on, the view cache, identity and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaNextForConditionalGeneration
from typer.testing import CliRunner

from baselines.generators.hf import load_image
from bench.cli import app
from bench.core import registry
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.weights import weights_identity
from bench.task.data.schema import Conversation
from bench.task.parser import OVER_BUDGET
from bench.task.protocols import Request
from lavic.finetune import RecSample, finetune
from lavic.viewcache import image_key
from tests.conftest import write_release
from tests.lavic.stage2_world import FAST, fake_stage1, model_for, world

CONFIG = FAST.model_copy(update={"max_length": 1400, "max_steps": 2})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lavic")
    base = root / "base"
    model_for(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    train, valid = world(root / "train-data")
    folders = {"base": base, "cache": root / "cache", "data": write_release(root / "data")}
    for variant, stage1 in (("lavic", fake_stage1(root / "s1", tokenizer, 1)),
                            ("no-images", None), ("entire-tokens", None)):
        folders[variant] = root / variant
        finetune(LlavaNextForConditionalGeneration.from_pretrained(base), tokenizer, train,
                 valid, folders[variant], CONFIG.model_copy(update={"variant": variant}),
                 stage1=stage1, cache_dir=folders["cache"],
                 base_identity=weights_identity(str(base)) or "")
    return folders


def build(name: str, trained: dict[str, Path], checkpoint: Path, **options: object) -> Any:
    registry.load_plugins()
    return registry.generators.build(name, BuildContext(
        options={"model_path": str(trained["base"]), "checkpoint": str(checkpoint),
                 "device": "cpu", **options}, cache_dir=trained["cache"]))


@pytest.mark.parametrize(("model", "variant", "decoding"), [
    ("lavic", "lavic", "generate"), ("lavic", "lavic", "score"),
    ("lavic-entire-tokens", "entire-tokens", "score"),
    ("lavic-no-images", "no-images", "generate")])
def test_bench_run_with_a_checkpoint(trained: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, model: str, variant: str,
                                     decoding: str) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(trained["cache"]))
    config = tmp_path / "bench.toml"
    config.write_text(f'[generators.{model}]\ndecoding = "{decoding}"\ndevice = "cpu"\n')
    result = CliRunner().invoke(app, [
        "run", "--config", str(config), "--dataset", "reddit-amazon", "--data-dir",
        str(trained["data"]), "--domain", "all_beauty", "--retriever", "dataset:st",
        "--model", model, "--limit", "3", "--model-path", str(trained["base"]),
        "--checkpoint", str(trained[variant]), "--out", str(tmp_path / "out"),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    found = list((tmp_path / "out").rglob("results.json"))
    assert len(found) == 1
    payload = json.loads(found[0].read_text())
    assert payload["model"] == model and payload["n_conversations"] == 3
    lines = [json.loads(x) for x in (found[0].parent / "predictions.jsonl").read_text()
             .splitlines()]
    assert len(lines) == 3
    if decoding == "score":  # every answer is one of the candidates
        assert payload["metrics"]["valid_ratio"] == 1.0


def test_inference_feeds_exactly_what_stage2_trained_on(trained: dict[str, Path]) -> None:
    gen = build("lavic", trained, trained["lavic"])
    train, _ = world(trained["data"].parent / "again")
    sample = train[0]
    request = Request(conversation=Conversation(id="c", context=sample.conversation),
                      candidates=sample.candidates)
    rendered = gen.render(request)
    inputs = gen.model_inputs([rendered])
    want, _ = gen.coder.encode(sample.conversation, sample.candidates,
                                                    gen.settings.max_new_tokens)
    assert inputs["input_ids"][0].tolist() == want
    calls = []
    gen.model.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    embeds = gen.prompt_embeds([rendered], inputs)
    assert calls == []  # the training images' rows are in the cache
    slot = inputs["input_ids"][0] == gen.model.config.image_token_index
    assert int(slot.sum()) == 5 * len(sample.candidates)
    rows = gen.cache.read(_keys(sample))
    assert torch.allclose(embeds[0][slot], rows.reshape(-1, rows.shape[-1]))
    assert gen.max_length == 1400  # stage 2's input limit
    short = build("lavic", trained, trained["lavic"], max_length=300)
    [choice] = short.recommend([request])  # no room: a counted failure, not a crash
    assert choice.failure == OVER_BUDGET and choice.usage["over_budget"] == 1


def test_entire_tokens_run_within_max_length_and_fail_over_budget_beyond(
        trained: dict[str, Path]) -> None:
    gen = build("lavic-entire-tokens", trained, trained["entire-tokens"], decoding="score")
    train, _ = world(trained["data"].parent / "entire")
    sample = train[0]
    n = len(sample.candidates)
    request = Request(conversation=Conversation(id="c", context=sample.conversation),
                      candidates=sample.candidates)
    rendered = gen.render(request)
    inputs = gen.model_inputs([rendered])
    ids = inputs["input_ids"][0]
    slot = ids == gen.model.config.image_token_index
    assert int(slot.sum()) == n * 25  # 5 views x (2 x 2 patches + [CLS]) per image
    embeds = gen.prompt_embeds([rendered], inputs)
    rows = gen.cache.read(_keys(sample))
    assert torch.allclose(embeds[0][slot], rows.reshape(-1, rows.shape[-1]).float())
    [fits] = gen.recommend([request])
    assert fits.failure is None and fits.item_id in {i.asin for i in sample.candidates}
    tight = build("lavic-entire-tokens", trained, trained["entire-tokens"], decoding="score",
                  max_length=n * 25 + 50)  # the images alone nearly fill it
    [choice] = tight.recommend([request])
    assert choice.failure == OVER_BUDGET and choice.usage["over_budget"] == 1


def _keys(sample: RecSample) -> list[bytes]:
    return [image_key(load_image(i.image_path)[1]) for i in sample.candidates]


def test_identity_covers_the_adapters(trained: dict[str, Path], tmp_path: Path) -> None:
    first = build("lavic", trained, trained["lavic"]).identity
    copy = tmp_path / "copy"
    shutil.copytree(trained["lavic"], copy)
    weights = copy / "adapter" / "adapter_model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.01 for k, v in tensors.items()}, weights)
    assert build("lavic", trained, copy).identity != first
    assert build("lavic", trained, trained["lavic"]).identity == first
    titles = build("lavic-no-images", trained, trained["no-images"])
    assert titles.cache is None and titles.identity != first


def test_a_checkpoint_of_another_variant_or_base_is_refused(trained: dict[str, Path],
                                                           tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="fine-tuned as variant 'lavic', not 'no-distill'"):
        build("lavic-no-distill", trained, trained["lavic"])
    with pytest.raises(BenchError, match="needs a fine-tuned checkpoint"):
        registry.generators.build("lavic", BuildContext(options={"device": "cpu"}))
    with pytest.raises(BenchError, match="not a finetune output folder"):
        build("lavic", trained, trained["data"].parent / "s1")
    other = tmp_path / "other"
    shutil.copytree(trained["base"], other)
    (other / "config.json").write_text((other / "config.json").read_text().replace(
        '"rms_norm_eps": 1e-05', '"rms_norm_eps": 2e-05'))
    with pytest.raises(BenchError, match="on other base weights"):
        registry.generators.build("lavic", BuildContext(options={
            "model_path": str(other), "checkpoint": str(trained["lavic"])}))
