"""One [CLS]-position vector per view, spliced into the placeholder slots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.core.errors import BenchError
from lavic.model.embed import embed_images, spliced_inputs, view_embeddings
from lavic.model.lora import LoraSpec, stage1
from lavic.model.tiny import tiny_model
from lavic.model.views import ViewMaker

V, SIDE = 5, 28


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model(projector_std=1.0)


def pixels(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, V, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


def test_default_layer_is_the_authors_cls(model: torch.nn.Module) -> None:
    """The authors: projector(vision_tower(views).last_hidden_state[:, 0])."""
    images = pixels(2, 0)
    with torch.no_grad():
        got = view_embeddings(model, images)
        last = model.model.vision_tower(images.flatten(0, 1)).last_hidden_state[:, 0]
        want = model.model.multi_modal_projector(last).view(2, V, -1)
        earlier = view_embeddings(model, images, layer=-2)
    assert got.shape == (2, V, model.config.text_config.hidden_size)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, earlier, atol=1e-3)


def test_an_image_embeds_alike_in_any_batch(model: torch.nn.Module) -> None:
    a, b, c = pixels(1, 1), pixels(1, 2), pixels(1, 3)
    with torch.no_grad():
        alone = view_embeddings(model, a)[0]
        with_b = view_embeddings(model, torch.cat([b, a]))[1]
        with_c = view_embeddings(model, torch.cat([a, c]))[0]
    assert torch.allclose(alone, with_b, atol=1e-5) and torch.allclose(alone, with_c, atol=1e-5)
    assert not torch.allclose(alone, view_embeddings(model, b)[0].detach(), atol=1e-3)


def test_missing_layer_is_one_line(model: torch.nn.Module) -> None:
    with pytest.raises(BenchError, match="vision layer 7 does not exist"):
        view_embeddings(model, pixels(1, 0), layer=7)


def test_views_fill_the_slots_in_order(model: torch.nn.Module) -> None:
    slot = model.config.image_token_index
    ids = torch.tensor([[1, 2] + [slot] * V + [3] + [slot] * V,
                        [4] * 6 + [slot] * V + [5, 6]])
    views = torch.arange(3 * V * 32, dtype=torch.float32).view(3, V, 32)
    with torch.no_grad():
        out = spliced_inputs(model, ids, views)
        tokens = model.get_input_embeddings()(ids)
    mask = ids == slot
    assert torch.equal(out[~mask], tokens[~mask])
    assert torch.equal(out[0, 2:7], views[0]) and torch.equal(out[0, 8:13], views[1])
    assert torch.equal(out[1, 6:11], views[2])


def test_slots_that_would_shift_an_image_are_refused(model: torch.nn.Module) -> None:
    """10 slots for 2 images, but split 3 + 7 across rows: an image would straddle rows."""
    slot = model.config.image_token_index
    ids = torch.tensor([[slot] * 3 + [1] * 7, [slot] * 7 + [1] * 3])
    with pytest.raises(BenchError, match=r"per row \[3, 7\] do not fit 2 images"):
        spliced_inputs(model, ids, torch.zeros(2, V, 32))
    with pytest.raises(BenchError, match="do not fit 1 images"):
        spliced_inputs(model, ids[:1].clone().fill_(slot), torch.zeros(1, V, 32))


def test_gradient_reaches_the_vision_tower(model: torch.nn.Module) -> None:
    slot = model.config.image_token_index
    ids = torch.tensor([[1] + [slot] * V + [2, 3]])
    embeds = spliced_inputs(model, ids, view_embeddings(model, pixels(1, 4)))
    model.zero_grad()
    model(inputs_embeds=embeds).logits[0, -1].logsumexp(-1).backward()
    q_proj = next(p for n, p in model.model.vision_tower.named_parameters()
                  if n.endswith("layers.0.self_attn.q_proj.weight"))
    assert q_proj.grad is not None and q_proj.grad.abs().sum() > 0
    model.zero_grad()


def test_embedding_images_for_the_cache_is_batch_and_mode_free() -> None:
    """The cached vectors of an image do not depend on the batch size or on LoRA dropout."""
    model = stage1(tiny_model(projector_std=1.0), LoraSpec(dropout=0.5))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (30 + 7 * i, 40, 3), dtype=np.uint8))
              for i in range(5)]
    maker = ViewMaker(model.config)
    model.train()
    one = embed_images(model, images, maker, batch_size=1)
    three = embed_images(model, images, maker, batch_size=3, dtype=torch.bfloat16)
    assert model.training  # restored
    assert one.shape == (5, V, 32) and three.dtype == torch.bfloat16
    assert torch.allclose(one.to(torch.bfloat16).float(), three.float())
    with torch.no_grad():
        model.eval()
        assert torch.allclose(one[2], view_embeddings(model, maker.batch(images[2:3]))[0])
    assert embed_images(model, [], maker).shape == (0, V, 32)
