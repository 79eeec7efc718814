"""The entire-tokens ablation: views x (patches + 1) vectors per image (the paper's 5 x 577),
each the vision tower's token through the projector; rows cached in the model's dtype; the
prompt budgeted exactly. Hand counts on the tiny model: 28 px views, 14 px patches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from baselines.generators.chat import ChatTurn
from bench.core.errors import BenchError
from bench.task.data.schema import Item
from lavic.model.arch import real_config
from lavic.model.embed import embed_images
from lavic.model.fulltokens import AnyResTokens, ViewTokens, entire_tokens
from lavic.model.views import ViewMaker
from lavic.stage2.prompt import RecPrompt
from lavic.store.tokencache import TokenCache
from tests.lavic.conftest import IMAGE
from tests.lavic.stage2_world import model_for

# (28 / 14) ** 2 = 4 patches + [CLS] = 5 tokens per view
PER_VIEW = 5


def _images() -> list[Image.Image]:
    wide = Image.new("RGB", (56, 40), (200, 30, 30))
    wide.paste((20, 20, 220), (0, 0, 20, 40))
    return [wide, Image.new("RGB", (20, 100), (30, 200, 40))]


def test_the_paper_row_is_2885_tokens_per_image_on_the_real_model() -> None:
    assert ViewTokens(real_config(), 5, -1).count() == 5 * 577 == 2885


@pytest.mark.parametrize("views", [1, 5, 9])
def test_each_image_is_every_token_of_its_views_through_the_projector(tokenizer,
                                                                       views: int) -> None:
    model = model_for(tokenizer)
    full = ViewTokens(model.config, views, -1)
    images = _images()
    assert [full.count(i) for i in images] == [views * PER_VIEW] * 2  # size does not matter
    rows = full.embed(model, images)
    assert rows.shape == (2, views * PER_VIEW, 32)
    with torch.no_grad():  # the authors' tower output: last_hidden_state, every position
        pixels = ViewMaker(model.config, views)(images[0])
        states = model.model.vision_tower(pixels).last_hidden_state
        want = model.model.multi_modal_projector(states).reshape(-1, 32)
    assert torch.allclose(rows[0], want, atol=1e-6)
    # position 0 of each view is the [CLS] vector LaViC itself feeds
    cls = embed_images(model, images[:1], ViewMaker(model.config, views))[0]
    assert torch.allclose(rows[0, ::PER_VIEW], cls, atol=1e-6)
    assert torch.allclose(full.embed(model, images[1:])[0], rows[1], atol=1e-6)  # no neighbours
    assert not torch.allclose(rows[0], rows[1])


def test_rows_are_stored_in_the_model_dtype_once_per_image(tokenizer, tmp_path: Path) -> None:
    model = model_for(tokenizer).to(torch.bfloat16)
    cache = TokenCache(tmp_path, base="b", full=ViewTokens(model.config, 5, -1), hidden=32)
    images = dict(zip([b"a", b"b"], _images(), strict=True))
    assert cache.fill(model, images) == 2
    assert cache.fill(model, images) == 0  # cached
    rows = cache.read([b"b", b"a", b"b"])
    assert rows.dtype == torch.bfloat16 and rows.shape == (3 * 25, 1, 32)
    shards = list(cache.root.rglob("*.safetensors"))
    # 2 images x 25 tokens x 32 values x 2 bytes, plus the shard's header and hashes
    assert len(shards) == 1 and 3200 <= shards[0].stat().st_size < 3200 + 1024
    assert torch.equal(rows[:25], rows[50:])
    again = TokenCache(tmp_path, base="b", full=ViewTokens(model.config, 5, -1), hidden=32)
    assert again.fill(model.float(), images) == 2  # float32 rows are other numbers: own store
    assert again.read([b"a"]).dtype == torch.float32


def test_the_prompt_holds_exactly_the_tokens_and_is_refused_beyond_max_length(
        tokenizer) -> None:
    items = tuple(Item(asin=f"B0000000{i}", title=f"thing {i}") for i in range(3))
    room, turn = 11, ChatTurn(tokenizer)
    one_slot = RecPrompt(turn, IMAGE, 1, max_length=10_000)
    short, _ = one_slot.encode("hi there", items, room)
    full, truncated = one_slot.encode("hi there", items, room, [25, 25, 25])
    assert not truncated and full.count(tokenizer.convert_tokens_to_ids(IMAGE)) == 3 * 25
    assert len(full) == len(short) + 3 * 24  # each image's one slot became 25
    exact = RecPrompt(turn, IMAGE, 1, max_length=len(full) + room)
    assert exact.encode("hi there", items, room, [25] * 3) == (full, False)
    cut, truncated = RecPrompt(turn, IMAGE, 1, max_length=len(full) + room - 1).encode(
        "hi there", items, room, [25] * 3)
    assert truncated and len(cut) < len(full)  # the conversation lost text, no image did
    assert cut.count(tokenizer.convert_tokens_to_ids(IMAGE)) == 3 * 25
    fixed = len(full) - len("hi there")  # the instruction, candidates and images
    with pytest.raises(BenchError, match="leave no room for the conversation"):
        RecPrompt(turn, IMAGE, 1, max_length=fixed - 5).encode("hi there", items, room,
                                                               [25] * 3)


def test_anyres_is_llava_own_features_counted_from_the_size(tokenizer) -> None:
    model = model_for(tokenizer)
    full = entire_tokens("anyres", model.config, views=5, layer=-1, tokenizer=tokenizer)
    assert isinstance(full, AnyResTokens)
    wide, tall = _images()
    assert full.count(wide) != full.count(tall)
    for image in (wide, tall):
        pixels = full.processor.image_processor(image, return_tensors="pt")
        with torch.no_grad():
            want = model.model.get_image_features(
                pixel_values=pixels["pixel_values"], image_sizes=pixels["image_sizes"],
                vision_feature_layer=-2, vision_feature_select_strategy="default")
        rows = full.embed(model, [image])[0]
        assert rows.shape[0] == full.count(image)
        assert torch.allclose(rows, torch.cat(list(want.pooler_output)), atol=1e-6)


def test_bad_settings_are_one_line(tokenizer) -> None:
    config = model_for(tokenizer).config
    with pytest.raises(BenchError, match="anyres shows LLaVA's own image tokens"):
        entire_tokens("anyres", config, views=9, layer=-1, tokenizer=tokenizer)
    with pytest.raises(BenchError, match="vision layer 7 does not exist"):
        entire_tokens("views", config, views=5, layer=7, tokenizer=tokenizer)
