"""The one chat-turn rule (``baselines/generators/chat.py``) that stage 1, stage 2 and the HF
generators share: exactly one BOS whatever the template writes, none from a tokenizer that adds
none, the answer's ids, and the room a prompt leaves for the answer. Hand counts on the
character tokenizer (one token per character, BOS id 1, EOS id 2)."""

from __future__ import annotations

import pytest
from tokenizers import processors

from baselines.generators.chat import ChatTurn
from lavic.model.tiny import char_tokenizer
from lavic.model.views import ViewMaker
from lavic.stage1.data import Described
from lavic.stage1.distill import Collator
from tests.lavic.conftest import IMAGE
from tests.lavic.stage2_world import model_for

BOS, EOS = 1, 2
WRITES_BOS = "{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]"
NO_BOS = "[INST] {{ messages[0]['content'] }} [/INST]"


def tokenizer(template: str | None = None, *, adds_bos: bool = True):  # type: ignore[no-untyped-def]
    tok = char_tokenizer()
    tok.chat_template = template
    if not adds_bos:  # a GPT-2-like tokenizer: BOS known, never added by itself
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A")
    return tok


@pytest.mark.parametrize(("template", "rendered"), [
    (None, "hi"), (WRITES_BOS, "<s>[INST] hi [/INST]"), (NO_BOS, "[INST] hi [/INST]")])
def test_exactly_one_bos_whatever_the_template_writes(template: str | None,
                                                      rendered: str) -> None:
    turn = ChatTurn(tokenizer(template))
    assert turn.render("hi") == rendered
    ids = turn.encode("hi")
    assert ids[0] == BOS and ids.count(BOS) == 1
    assert len(ids) == len(rendered.removeprefix("<s>")) + 1  # one token a character + BOS


def test_a_tokenizer_that_adds_no_bos_gets_none() -> None:
    for template, length in ((None, 2), (NO_BOS, 17)):
        ids = ChatTurn(tokenizer(template, adds_bos=False)).encode("hi")
        assert BOS not in ids and EOS not in ids and len(ids) == length


def test_the_fallback_format_without_a_template() -> None:
    turn = ChatTurn(tokenizer(), fallback="USER: {prompt} ASSISTANT:")
    assert turn.render("hi") == "USER: hi ASSISTANT:"
    assert turn.encode("hi")[:2] == [BOS, turn.tokenizer.convert_tokens_to_ids("U")]


def test_answer_ids_and_the_room_left_for_them() -> None:
    turn = ChatTurn(tokenizer())
    assert turn.answer("B0001") == [*turn.tokenizer("B0001", add_special_tokens=False)[
        "input_ids"], EOS] and len(turn.answer("B0001")) == 6
    assert turn.answer("B0001", eos=7)[-1] == 7
    assert turn.room("generate", 10, ["B0001", "B000000001"]) == 10
    assert turn.room("score", 10, ["B0001", "B000000001"]) == 11  # 10 characters + EOS
    assert turn.room("score", 10, []) == 0


def test_stage1_feeds_one_bos_through_a_template_that_writes_none(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The description prompt once dropped BOS whenever a template existed."""
    tok = tokenizer(NO_BOS)
    model = model_for(tok)
    collator = Collator(tok, ViewMaker(model.config), tok.convert_tokens_to_ids(IMAGE), 2000)
    ids, labels = collator.encode(Described(title="t", image=tmp_path / "x.png",
                                            description="red"))
    assert ids[0] == BOS and ids.count(BOS) == 1
    assert ids[1:8] == tok("[INST] ", add_special_tokens=False)["input_ids"]
    assert [x for x in labels if x != -100] == [*tok("red", add_special_tokens=False)[
        "input_ids"], EOS]
