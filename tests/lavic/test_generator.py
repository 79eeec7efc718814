"""The ``lavic`` generator: `bench run --model lavic --checkpoint DIR` in both decodings, the
rows stage 2 really trained on (captured from its collator) fed token for token, the view
cache, identity and refusals."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaNextForConditionalGeneration
from typer.testing import CliRunner

import lavic.stage2.finetune
from baselines.generators.hf import load_image
from bench.cli import app
from bench.core import registry
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.weights import weights_identity
from bench.task.data.schema import Conversation
from bench.task.parser import OVER_BUDGET
from bench.task.protocols import Request
from lavic.stage2.examples import RecExample
from lavic.stage2.finetune import finetune
from lavic.stage2.rows import Collator
from lavic.store.viewcache import image_key
from lavic.training import IGNORE
from tests.conftest import write_release
from tests.lavic.stage2_world import FAST, fake_stage1, model_for, world

CONFIG = FAST.model_copy(update={"max_length": 1400, "max_steps": 2})
MAX_NEW_TOKENS = 10  # the lavic generator's default: the answer room both sides leave


@dataclass(frozen=True)
class Fed:
    """One row as the Trainer fed it to the model during stage 2."""

    prompt: list[int]
    answer: list[int]
    views: torch.Tensor  # (candidates, views, hidden)


FED: list[Fed] = []  # what the Recording collator saw in the last finetune run


class Recording(Collator):
    """Stage 2's own collator, keeping every training batch it builds (padding removed)."""

    def __call__(self, batch: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        out = super().__call__(batch)
        views = out["views"].split([len(row["images"]) for row in batch])
        for ids, mask, labels, rows in zip(out["input_ids"], out["attention_mask"],
                                           out["labels"], views, strict=True):
            ids, labels = ids[mask == 1].tolist(), labels[mask == 1].tolist()
            cut = labels.index(next(t for t in labels if t != IGNORE))
            FED.append(Fed(ids[:cut], ids[cut:], rows))
        return out


def long_example(example: RecExample) -> RecExample:
    """``example`` with a conversation far over the 1,400-token limit (1 token a character)."""
    text = " ".join(f"turn {i}: {example.conversation.context}" for i in range(60))
    assert len(text) > 3 * CONFIG.max_length
    return replace(example, conversation=Conversation(id="long", context=text))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lavic")
    base = root / "base"
    model_for(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    train, valid = world(root / "train-data")
    folders: dict[str, Any] = {"base": base, "cache": root / "cache",
                               "data": write_release(root / "data")}
    # the lavic run sees each of its 4 rows once (2 steps of 2), one conversation must be cut
    seen = [*train[:3], long_example(train[0])]
    FED.clear()
    runs = {"lavic": (fake_stage1(root / "s1", tokenizer, 1), seen,
                      {"max_steps": -1, "epochs": 1}),
            "no-images": (None, train, {}), "entire-tokens": (None, train, {})}
    for variant, (stage1, rows, update) in runs.items():
        folders[variant] = root / variant
        with pytest.MonkeyPatch.context() as patch:
            if variant == "lavic":  # views rows: one per candidate image
                patch.setattr(lavic.stage2.finetune, "Collator", Recording)
            finetune(LlavaNextForConditionalGeneration.from_pretrained(base), tokenizer, rows,
                     valid, folders[variant],
                     CONFIG.model_copy(update={"variant": variant, **update}), stage1=stage1,
                     cache_dir=folders["cache"], base_identity=weights_identity(str(base)) or "")
    folders["fed"], folders["seen"] = list(FED), seen
    return folders


def build(name: str, trained: dict[str, Any], checkpoint: Path, **options: object) -> Any:
    registry.load_plugins()
    return registry.generators.build(name, BuildContext(
        options={"model_path": str(trained["base"]), "checkpoint": str(checkpoint),
                 "device": "cpu", **options}, cache_dir=trained["cache"]))


@pytest.mark.parametrize(("model", "variant", "decoding"), [
    ("lavic", "lavic", "generate"), ("lavic", "lavic", "score"),
    ("lavic-entire-tokens", "entire-tokens", "score"),
    ("lavic-no-images", "no-images", "generate")])
def test_bench_run_with_a_checkpoint(trained: dict[str, Any], tmp_path: Path,
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


def test_the_generator_feeds_the_rows_stage2_trained_on(trained: dict[str, Any]) -> None:
    """Every prompt the Trainer fed (captured from stage 2's collator) is, token for token and
    view for view, what `bench run --model lavic` feeds for that conversation, the one cut at
    the input limit included."""
    gen = build("lavic", trained, trained["lavic"])
    fed: list[Fed] = trained["fed"]
    assert len(fed) == 4 and gen.settings.max_new_tokens == MAX_NEW_TOKENS
    calls: list[int] = []
    gen.model.model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    slot_id = gen.model.config.image_token_index
    for example in trained["seen"]:
        rendered = gen.render(Request(example.conversation, example.candidates))
        inputs = gen.model_inputs([rendered])
        ids = inputs["input_ids"][0].tolist()
        [row] = [f for f in fed if f.prompt == ids]  # trained on once, on exactly these ids
        assert tokenizer_text(gen, row.answer) == example.target + "</s>"
        embeds = gen.prompt_embeds([rendered], inputs)
        slots = inputs["input_ids"][0] == slot_id
        assert int(slots.sum()) == 5 * len(example.candidates)
        assert torch.equal(embeds[0][slots].to(row.views.dtype),
                           row.views.reshape(-1, row.views.shape[-1]))
        if example.conversation.id == "long":  # cut: the oldest text went, the newest stayed
            assert rendered.usage["truncated"] == 1
            assert 1400 - MAX_NEW_TOKENS - 2 <= len(ids) <= 1400 - MAX_NEW_TOKENS
            text = gen.tokenizer.decode(ids)
            assert "turn 0:" not in text and example.conversation.context[-60:] in text
        else:
            assert rendered.usage["truncated"] == 0
    assert calls == []  # every image's row came from the cache stage 2 filled
    short = build("lavic", trained, trained["lavic"], max_length=300)
    [choice] = short.recommend([Request(trained["seen"][0].conversation,
                                        trained["seen"][0].candidates)])
    assert choice.failure == OVER_BUDGET and choice.usage["over_budget"] == 1  # not a crash


def tokenizer_text(gen: Any, ids: list[int]) -> str:
    return "".join(gen.tokenizer.convert_ids_to_tokens(ids))


def test_entire_tokens_run_within_max_length_and_fail_over_budget_beyond(
        trained: dict[str, Any]) -> None:
    gen = build("lavic-entire-tokens", trained, trained["entire-tokens"], decoding="score")
    train, _ = world(trained["data"].parent / "entire")
    sample = train[0]
    n = len(sample.candidates)
    request = Request(sample.conversation, sample.candidates)
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


def _keys(example: RecExample) -> list[bytes]:
    return [image_key(load_image(i.image_path)[1]) for i in example.candidates]


def test_identity_covers_the_adapters(trained: dict[str, Any], tmp_path: Path) -> None:
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


def test_a_checkpoint_of_another_variant_or_base_is_refused(trained: dict[str, Any],
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
