"""Stage 2: the view cache instead of the vision tower, loss on the ID + EOS, best epoch by
HR@1, resume after a kill, and a changed stage 1 refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers.trainer_utils import get_last_checkpoint

from bench.errors import BenchError
from bench.prompt import IMAGE_SLOT
from lavic.checkpoint import adapter_hash, load_finetuned
from lavic.embed import embed_images, llava
from lavic.finetune import Encoder, finetune, image_rows
from lavic.fulltokens import TokenCache
from lavic.recprompt import RecPrompt
from lavic.viewcache import MISSING, ViewCache
from lavic.views import ViewMaker
from tests.lavic.conftest import IMAGE
from tests.lavic.stage2_world import FAST, fake_stage1, model_for, world
from tests.lavic.test_distill import Kill, Steps


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return world(tmp_path_factory.mktemp("release") / "data")


def test_loss_on_the_id_and_eos_and_only_the_conversation_is_cut(tokenizer, data) -> None:
    train, _ = data
    sample = train[0]
    coder = RecPrompt(tokenizer, IMAGE, 5, max_length=900)
    row = Encoder(coder, None).row(sample)
    kept = [t for t in row["labels"] if t != -100]
    assert tokenizer.decode(kept[:-1]) == sample.target and kept[-1] == tokenizer.eos_token_id
    prompt = tokenizer.decode(row["input_ids"][: len(row["input_ids"]) - len(kept)])
    assert prompt.count(IMAGE) == 5 * len(sample.candidates)
    for item in sample.candidates:
        assert f"{item.asin}: {item.title}\n{IMAGE * 5}" in prompt
    full, truncated = coder.encode(sample.conversation * 20, sample.candidates, 11)
    assert truncated and len(full) == 900 - 11
    text = tokenizer.decode(full)
    assert all(f"{i.asin}: {i.title}" in text for i in sample.candidates)
    assert text.endswith(IMAGE * 5)
    assert IMAGE_SLOT not in coder.sanitize(f"a {IMAGE_SLOT} in a title")
    with pytest.raises(BenchError, match="leave no room for the conversation"):
        RecPrompt(tokenizer, IMAGE, 5, max_length=300).encode("hi", sample.candidates, 11)


def test_training_reads_the_cache_and_moves_only_the_llm_adapter(tokenizer, data,
                                                                   tmp_path: Path) -> None:
    train, valid = data
    stage1 = fake_stage1(tmp_path / "s1", tokenizer, seed=1)
    finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "first", FAST,
             stage1=stage1, cache_dir=tmp_path / "cache")  # fills the cache
    model = model_for(tokenizer)
    calls = []
    model.model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = finetune(model, tokenizer, train, valid, tmp_path / "out", FAST, stage1=stage1,
                      cache_dir=tmp_path / "cache")
    assert calls == []  # every view embedding came from the cache
    assert result["stage1"] == adapter_hash(stage1 / "adapter") and result["config"][
        "variant"] == "lavic" and result["config"]["views"] == 5
    params = dict(llava(model).named_parameters())
    moved = [n for n, p in params.items() if "lora_B" in n and p.abs().sum() > 0]
    assert moved and all("language_model" in n for n in moved)
    assert not any(p.requires_grad for n, p in params.items() if "lora_" not in n)
    vision = [n for n in before if "vision_tower" in n or "multi_modal_projector" in n]
    merged = load_finetuned(model_for(tokenizer), tmp_path / "out")[0]
    weights = dict(merged.named_parameters())
    changed = [n for n in vision if not torch.equal(weights[n], before[n])]
    assert changed  # the stage-1 adapter was merged into the vision side ...
    assert not any(torch.equal(weights[n], before[n]) for n in before
                   if n.endswith(("q_proj.weight", "down_proj.weight")) and "language" in n)
    logged = [e["eval_hr@1"] for e in json.loads(
        (Path(get_last_checkpoint(str(tmp_path / "out"))) / "trainer_state.json").read_text()
    )["log_history"] if "eval_hr@1" in e]
    assert len(logged) == 2 and result["best_hr@1"] == max(logged)


def test_the_cache_key_names_the_vision_side_and_missing_images_share_a_row(
        tokenizer, tmp_path: Path) -> None:
    model = model_for(tokenizer)
    maker = ViewMaker(model.config)
    kinds = {stage1: ViewCache(tmp_path, base="b", stage1=stage1, views=maker, layer=-1,
                               hidden=32) for stage1 in ("none", "abc")}
    assert kinds["none"].store.dir != kinds["abc"].store.dir
    cache = kinds["none"]
    assert cache.fill_paths(model, [None, tmp_path / "absent.png", None]) == 1
    assert cache.key_of(None) == cache.key_of(tmp_path / "absent.png") == MISSING
    white = embed_images(model, [Image.new("RGB", (336, 336), (255, 255, 255))], maker)
    assert torch.allclose(cache.read([MISSING]), white)


def test_a_killed_run_resumes_to_the_same_adapter(tokenizer, data, tmp_path: Path) -> None:
    train, valid = data
    cache = tmp_path / "cache"
    config = FAST.model_copy(update={"variant": "no-distill"})
    finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "whole", config,
             cache_dir=cache)
    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        finetune(model_for(tokenizer), tokenizer, train, valid, killed, config,
                 cache_dir=cache, callbacks=[Kill(3)])
    assert Path(get_last_checkpoint(str(killed))).name == "checkpoint-2"
    steps = Steps()
    finetune(model_for(tokenizer), tokenizer, train, valid, killed, config, cache_dir=cache,
             callbacks=[steps])
    assert steps.taken == 2
    assert adapter_hash(killed / "adapter") == adapter_hash(tmp_path / "whole" / "adapter")


def test_a_changed_stage1_or_variant_mismatch_is_refused(tokenizer, data,
                                                         tmp_path: Path) -> None:
    train, valid = data
    old, new = (fake_stage1(tmp_path / f"s{i}", tokenizer, seed=i) for i in (1, 2))
    config = FAST.model_copy(update={"max_steps": 1})
    out = tmp_path / "out"
    finetune(model_for(tokenizer), tokenizer, train, valid, out, config, stage1=old,
             cache_dir=tmp_path / "c")
    with pytest.raises(BenchError, match="stage 1 changed since this stage-2 run"):
        finetune(model_for(tokenizer), tokenizer, train, valid, out, config, stage1=new,
                 cache_dir=tmp_path / "c")
    (out / "stage1" / "adapter_model.safetensors").write_bytes(
        (new / "adapter" / "adapter_model.safetensors").read_bytes())
    with pytest.raises(BenchError, match="is not the one this stage 2 was trained on"):
        load_finetuned(model_for(tokenizer), out)
    with pytest.raises(BenchError, match="variant lavic needs the stage-1"):
        finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "x", config,
                 cache_dir=tmp_path / "c")
    with pytest.raises(BenchError, match="variant no-images takes no stage-1"):
        finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "x",
                 config.model_copy(update={"variant": "no-images"}), stage1=old,
                 cache_dir=tmp_path / "c")


def test_entire_tokens_fill_each_image_own_count_of_slots(tokenizer, data,
                                                           tmp_path: Path) -> None:
    train, valid = data
    config = FAST.model_copy(update={"variant": "entire-tokens", "max_steps": 2})
    result = finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "out", config,
                      cache_dir=tmp_path / "cache")
    assert result["config"]["variant"] == "entire-tokens"
    model = model_for(tokenizer)
    cache = image_rows(config, model.config, tmp_path / "cache", base="", stage1="none",
                       tokenizer=tokenizer)
    assert isinstance(cache, TokenCache)
    sample = train[0]
    assert cache.fill_paths(model, [i.image_path for i in sample.candidates]) == 0  # cached
    counts = [cache.counts[cache.key_of(i.image_path)] for i in sample.candidates]
    wide, tall = Image.new("RGB", (56, 40)), Image.new("RGB", (20, 100))
    assert cache.full.count(wide) != cache.full.count(tall)  # any-resolution: size decides
    assert [len(cache.full.embed(model, i)) for i in (wide, tall)] == [
        cache.full.count(i) for i in (wide, tall)]
    coder = RecPrompt(tokenizer, IMAGE, 1, max_length=900)
    ids, keys = Encoder(coder, cache).prompt(sample, 11)
    rows = cache.read(keys)
    assert rows.shape == (sum(counts), 1, 32) and ids.count(model.config.image_token_index) \
        == sum(counts)
    with torch.no_grad():  # the rows are LLaVA's own features of each image
        first = sample.candidates[0].image_path
        want = cache.full.embed(model, Image.open(first).convert("RGB"))
    assert torch.allclose(rows[: counts[0], 0], want, atol=1e-6)
