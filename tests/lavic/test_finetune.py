"""Stage 2: the view cache instead of the vision tower, loss on the ID + EOS, best epoch by
HR@1, resume after a kill, a changed stage 1 refused; validation as the test (raw lists,
generate, the paper's parser) or with the scoring shortcut."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers.trainer_utils import get_last_checkpoint
from typer.testing import CliRunner

from baselines.generators.chat import ChatTurn
from bench.cli import app
from bench.core import registry
from bench.core.context import BuildContext
from bench.core.errors import BenchError, Warnings
from bench.core.weights import weights_identity
from bench.task.data.release import ReleaseDataset
from bench.task.prompt import IMAGE_SLOT
from bench.task.protocols import Request
from lavic.model.embed import embed_images, llava
from lavic.model.views import ViewMaker
from lavic.stage2.config import image_rows
from lavic.stage2.examples import load_examples
from lavic.stage2.finetune import Validator, finetune
from lavic.stage2.prompt import RecPrompt
from lavic.stage2.rows import Collator, RowBuilder
from lavic.store.checkpoint import adapter_hash, load_finetuned
from lavic.store.tokencache import TokenCache
from lavic.store.viewcache import MISSING, ViewCache
from tests.conftest import ASINS, write_release
from tests.lavic.conftest import IMAGE
from tests.lavic.stage2_world import FAST, fake_stage1, model_for, world
from tests.lavic.test_distill import Kill, Steps


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return world(tmp_path_factory.mktemp("release") / "data")


def test_loss_on_the_id_and_eos_and_only_the_conversation_is_cut(tokenizer, data) -> None:
    train, _ = data
    sample = train[0]
    coder = RecPrompt(ChatTurn(tokenizer), IMAGE, 5, max_length=900)
    row = RowBuilder(coder, None).row(sample)
    kept = [t for t in row["labels"] if t != -100]
    assert tokenizer.decode(kept[:-1]) == sample.target and kept[-1] == tokenizer.eos_token_id
    prompt = tokenizer.decode(row["input_ids"][: len(row["input_ids"]) - len(kept)])
    assert prompt.count(IMAGE) == 5 * len(sample.candidates)
    for item in sample.candidates:
        assert f"{item.asin}: {item.title}\n{IMAGE * 5}" in prompt
    full, truncated = coder.encode(sample.conversation.context * 20, sample.candidates, 11)
    assert truncated and len(full) == 900 - 11
    text = tokenizer.decode(full)
    assert all(f"{i.asin}: {i.title}" in text for i in sample.candidates)
    assert text.endswith(IMAGE * 5)
    assert IMAGE_SLOT not in coder.sanitize(f"a {IMAGE_SLOT} in a title")
    with pytest.raises(BenchError, match="leave no room for the conversation"):
        RecPrompt(ChatTurn(tokenizer), IMAGE, 5, max_length=300).encode("hi", sample.candidates,
                                                                        11)


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


@pytest.mark.parametrize("definition", ["views", "anyres"])
def test_entire_tokens_train_with_each_image_tokens_in_its_slots(tokenizer, data,
                                                                 tmp_path: Path,
                                                                 definition: str) -> None:
    train, valid = data
    config = FAST.model_copy(update={"variant": "entire-tokens", "entire_tokens": definition,
                                     "max_steps": 2})
    result = finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "out", config,
                      cache_dir=tmp_path / "cache")
    assert result["config"]["entire_tokens"] == definition
    model = model_for(tokenizer)
    cache = image_rows(config, model.config, tmp_path / "cache", base="", stage1="none",
                       tokenizer=tokenizer)
    assert isinstance(cache, TokenCache)
    sample = train[0]
    paths = [i.image_path for i in sample.candidates]
    assert cache.fill_paths(model, paths) == 0  # cached by the training run
    counts = [cache.counts[cache.key_of(p)] for p in paths]
    if definition == "views":  # 5 views x (2 x 2 patches of a 28 px view + [CLS])
        assert counts == [25, 25, 25]
    coder = RecPrompt(ChatTurn(tokenizer), IMAGE, 1, max_length=900)
    ids, keys = RowBuilder(coder, cache).prompt(sample, 11)
    rows = cache.read(keys)
    assert rows.shape == (sum(counts), 1, 32)
    assert ids.count(model.config.image_token_index) == sum(counts)
    first = Image.open(paths[0]).convert("RGB")
    assert torch.allclose(rows[: counts[0], 0], cache.full.embed(model, [first])[0], atol=1e-6)


def _valid(root: Path, validation: str) -> tuple[list, list]:  # type: ignore[type-arg]
    """The release fixture's all_beauty valid split (also as its train split) as loaded for
    stage 2: 12 conversations, candidates_st = the first 10 ASINs for each."""
    data = write_release(root)
    shutil.copyfile(data / "all_beauty" / "valid.jsonl", data / "all_beauty" / "train.jsonl")
    return load_examples(data, ["all_beauty"], validation=validation,  # type: ignore[arg-type]
                        warnings=Warnings())


def test_generate_validation_counts_pairs_on_the_raw_lists(tokenizer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    _, valid = _valid(tmp_path / "data", "generate")
    # conversation i asks for ASINS[i]; conversation 1 also for ASINS[11]
    assert [s.truths for s in valid] == [(ASINS[i],) if i != 1 else (ASINS[1], ASINS[11])
                                         for i in range(12)]
    assert all(sorted(i.asin for i in s.candidates) == sorted(ASINS[:10]) for s in valid)
    builder = RowBuilder(RecPrompt(ChatTurn(tokenizer), IMAGE, 0, max_length=2000), None)
    asked = [builder.asked(s, "generate") for s in valid]
    model = model_for(tokenizer)
    said = iter(["no idea"] + [f"Try {s.truths[0]}." for s in valid[1:]])
    seen = []

    def generate(*, input_ids: torch.Tensor, max_new_tokens: int, do_sample: bool,
                 **_: object) -> torch.Tensor:  # an oracle naming the first ground truth
        seen.append((input_ids[0].tolist(), max_new_tokens, do_sample))
        answer = tokenizer(next(said), add_special_tokens=False)["input_ids"]
        tail = [*answer, tokenizer.eos_token_id,
                *tokenizer(f" {ASINS[0]}", add_special_tokens=False)["input_ids"]]
        return torch.cat([input_ids, torch.tensor([tail])], dim=1)

    monkeypatch.setattr(model, "generate", generate)
    validator = Validator(asked, Collator(tokenizer.pad_token_id or 0, None, 32), tokenizer)
    # hand count over 13 pairs: conversations 1-3 and 5-9 hit (conversation 1: one of two
    # pairs); 0 said nothing (the ID after end-of-sequence is cut), 4's ASIN 1000000005 is
    # not read by the paper's parser, 10 and 11 ask for items outside their list
    assert validator.hit_rate(model, torch.device("cpu")) == 8 / 13
    assert [s[0] for s in seen] == [a.prompt for a in asked]  # one request per conversation
    assert {s[1:] for s in seen} == {(10, False)}  # the generator's max_new_tokens, greedy
    assert all(len(a.prompt) <= 2000 - 10 for a in asked)


def test_score_validation_inserts_the_ground_truth(tmp_path: Path) -> None:
    _, valid = _valid(tmp_path / "data", "score")
    assert len(valid) == 13  # one per (conversation, ground truth) pair
    assert all(len(s.truths) == 1 and s.target in [i.asin for i in s.candidates]
               for s in valid)
    assert ASINS[11] in [i.asin for i in valid[2].candidates]  # conversation 1's second one


def test_validation_asks_and_reads_what_bench_run_does(tokenizer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    train, valid = _valid(tmp_path / "data", "generate")
    base = tmp_path / "base"
    model_for(tokenizer).save_pretrained(base)
    tokenizer.save_pretrained(base)
    config = FAST.model_copy(update={"variant": "no-images", "candidates": 10, "max_steps": 1,
                                     "eval_steps": 1, "max_length": 2000})
    result = finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "s2", config,
                      cache_dir=tmp_path / "cache", base_identity=weights_identity(str(base)))
    assert result["config"]["validation"] == "generate"
    assert "read by the paper parser" in result["validation"]
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "bench.toml").write_text('[generators.lavic-no-images]\ndecoding = "generate"'
                                         '\ndevice = "cpu"\nbatch_size = 1\n')
    run = CliRunner().invoke(app, [
        "run", "--config", str(tmp_path / "bench.toml"), "--dataset", "reddit-amazon",
        "--data-dir", str(tmp_path / "data"), "--domain", "all_beauty", "--split", "valid",
        "--retriever", "dataset:st", "--model", "lavic-no-images", "--limit", "3",
        "--model-path", str(base), "--checkpoint", str(tmp_path / "s2"), "--out",
        str(tmp_path / "run"), "--no-progress"])
    assert run.exit_code == 0, run.output
    [found] = (tmp_path / "run").rglob("predictions.jsonl")
    tested = [json.loads(x) for x in found.read_text().splitlines()]
    registry.load_plugins()
    gen = registry.generators.build("lavic-no-images", BuildContext(options={
        "model_path": str(base), "checkpoint": str(tmp_path / "s2"), "device": "cpu"},
        cache_dir=tmp_path / "cache"))
    builder = RowBuilder(gen.coder, None)
    conversations = {c.id: c for c in ReleaseDataset(tmp_path / "data").load(
        "all_beauty", "valid").conversations}
    assert len(tested) == 3
    for record, sample in zip(tested, valid[:3], strict=True):
        assert record["presented"] == [i.asin for i in sample.candidates]  # the same order
        asked = builder.asked(sample, "generate")
        request = Request(conversations[record["id"]], sample.candidates)
        assert gen.model_inputs([gen.render(request)])["input_ids"][0].tolist() == asked.prompt
        validator = Validator([asked], Collator(0, None, 32), tokenizer)
        assert validator.choose(gen.model, asked, torch.device("cpu")).raw == record["raw"]
