"""Stage 2's ``listwise`` objective: its rows are the prompt ``score`` decoding feeds plus every
candidate's answer, its loss is the cross-entropy over the candidates' scored IDs, and a run
trains with it end to end."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers.trainer_utils import get_last_checkpoint

from baselines.generators.chat import ChatTurn
from baselines.generators.scoring import score_continuations
from lavic.model.tiny import tiny_model
from lavic.stage2.config import GENERATED, FinetuneConfig
from lavic.stage2.finetune import finetune, listwise_loss
from lavic.stage2.prompt import RecPrompt
from lavic.stage2.rows import Collator, RowBuilder
from tests.lavic.conftest import IMAGE
from tests.lavic.stage2_world import FAST, model_for, world


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return world(tmp_path_factory.mktemp("release") / "data")


def test_a_listwise_row_leaves_the_score_room_and_carries_every_answer(tokenizer, data) -> None:
    example = data[0][0]
    long = replace(example, conversation=replace(example.conversation,
                                                 context=example.conversation.context * 40))
    coder = RecPrompt(ChatTurn(tokenizer), IMAGE, 5, max_length=900)
    row = RowBuilder(coder, None, "listwise").row(long)
    plain = RowBuilder(coder, None).row(long)
    eos = tokenizer.eos_token_id
    # the character tokenizer: one token per character, then EOS
    assert [tokenizer.decode(a[:-1]) for a in row["answers"]] == list(long.asins)
    assert all(a[-1] == eos for a in row["answers"])
    longest = max(len(a) for a in long.asins) + 1
    assert row["prompt_length"] == 900 - longest  # cut: the score room, not the generate room
    assert len(plain["input_ids"]) - len(example.target) - 1 == 900 - GENERATED
    assert long.asins[row["target"]] == long.target
    kept = [t for t in row["labels"] if t != -100]
    assert tokenizer.decode(kept[:-1]) == long.target and len(row["labels"]) == len(
        row["input_ids"]) == row["prompt_length"] + len(kept)
    batch = Collator(eos, None, 8)([row])
    assert batch["answers"] == [row["answers"]] and batch["target"] == [row["target"]]
    assert "answers" not in Collator(eos, None, 8)([plain])


def test_the_loss_is_the_cross_entropy_of_the_scored_answers() -> None:
    model = tiny_model(vocab_size=40).eval()
    ids = torch.tensor([[3, 9, 4, 17, 22, 8, 5]])
    embeds = model.get_input_embeddings()(ids)
    answers = [[11, 12, 2], [13, 2], [14, 15, 16, 2]]  # different lengths, EOS 2 last
    with torch.no_grad():
        scored = score_continuations(model, {"inputs_embeds": embeds,
                                             "attention_mask": torch.ones_like(ids)},
                                     answers, reuse_cache=False).logprobs
    for target in range(3):
        expected = math.log(sum(math.exp(s) for s in scored)) - scored[target]
        loss = listwise_loss(model, embeds, answers, target)
        assert loss.item() == pytest.approx(expected, abs=1e-4)
    loss.backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0


def test_a_listwise_run_trains_and_records_its_objective(tokenizer, data, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size 1"):
        FinetuneConfig(objective="listwise", batch_size=2)
    train, valid = data
    config = FAST.model_copy(update={"objective": "listwise", "batch_size": 1,
                                     "variant": "no-images", "validation": "score"})
    result = finetune(model_for(tokenizer), tokenizer, train, valid, tmp_path / "out", config,
                      cache_dir=tmp_path / "cache")
    assert result["config"]["objective"] == "listwise"
    history = json.loads((Path(get_last_checkpoint(str(tmp_path / "out")))
                          / "trainer_state.json").read_text())["log_history"]
    losses = [e["loss"] for e in history if "loss" in e]
    # a softmax over 3 candidates: every loss is positive and starts near log 3
    assert len(losses) == 4 and all(0 < x < 3 * math.log(3) for x in losses), losses
