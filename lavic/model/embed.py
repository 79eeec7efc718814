"""One vector per view: the [CLS]-position embedding of a vision layer, through the projector.

The LLM then sees an image as ``views`` input embeddings instead of LLaVA-1.6's ~2,000 image
tokens; they replace placeholder tokens (the model's own ``<image>`` token, so the vocabulary is
not resized) in the prompt, ``views`` consecutive slots per image.

Default layer, ``-1``: the authors' code takes ``vision_tower(pixels).last_hidden_state[:, 0]``,
the output of CLIP's last encoder layer before ``post_layernorm``, which is
``hidden_states[-1]``. (LLaVA itself feeds its projector layer ``-2``; the projector was never
trained on layer ``-1`` features, which stage 1 compensates with LoRA on the projector.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import LlavaNextForConditionalGeneration

from bench.core.errors import BenchError
from lavic.model.views import ViewMaker

DEFAULT_VISION_LAYER = -1


def llava(model: torch.nn.Module) -> LlavaNextForConditionalGeneration:
    """The LLaVA-NeXT model inside a peft wrapper (LoRA layers stay in place), or ``model``."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model  # type: ignore[return-value]


def view_embeddings(
    model: torch.nn.Module, pixels: torch.Tensor, *, layer: int = DEFAULT_VISION_LAYER
) -> torch.Tensor:
    """``pixels`` ``(images, views, 3, side, side)`` -> ``(images, views, llm_hidden)``."""
    inner = llava(model).model
    tower = inner.vision_tower
    depth = int(tower.config.num_hidden_layers)
    if not -(depth + 1) <= layer <= depth:
        raise BenchError(f"vision layer {layer} does not exist", where="lavic embed",
                         hint=f"the vision tower has hidden states -{depth + 1}..{depth}")
    images, views = pixels.shape[:2]
    weight = next(tower.parameters())
    flat = pixels.flatten(0, 1).to(device=weight.device, dtype=weight.dtype)
    states = tower(flat, output_hidden_states=True).hidden_states[layer]
    return inner.multi_modal_projector(states[:, 0]).view(images, views, -1)


def splice(
    embeds: torch.Tensor, input_ids: torch.Tensor, placeholder_id: int, views: torch.Tensor
) -> torch.Tensor:
    """Fill the placeholder positions of ``embeds`` ``(batch, len, hidden)`` with ``views``
    ``(images, views, hidden)`` in reading order, image by image.

    Each row must hold whole images (a multiple of ``views`` slots), so an image's views can
    never straddle two rows or shift into a neighbour's slots.
    """
    per_image = views.shape[1]
    mask = input_ids == placeholder_id
    slots = mask.sum(dim=1)
    if bool((slots % per_image).any()) or int(slots.sum()) != views.shape[0] * per_image:
        raise BenchError(
            f"placeholder slots per row {slots.tolist()} do not fit {views.shape[0]} images "
            f"x {per_image} views", where="lavic splice",
            hint="each image needs exactly `views` consecutive placeholder tokens")
    source = views.reshape(-1, views.shape[-1]).to(embeds.dtype)
    return embeds.masked_scatter(mask.unsqueeze(-1), source)


def spliced_inputs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    views: torch.Tensor,
    placeholder_id: int | None = None,
) -> torch.Tensor:
    """The LLM's input embeddings for ``input_ids`` with ``views`` in the placeholder slots
    (default placeholder: the model's ``<image>`` token)."""
    base = llava(model)
    token = base.config.image_token_index if placeholder_id is None else placeholder_id
    embeds = base.get_input_embeddings()(input_ids)
    return splice(embeds, input_ids, token, views)


def embed_images(
    model: torch.nn.Module,
    images: Sequence[Image.Image],
    views: ViewMaker,
    *,
    layer: int = DEFAULT_VISION_LAYER,
    batch_size: int = 16,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``(len(images), views, llm_hidden)`` on the CPU, computed once per item for caching:
    in eval mode (no LoRA dropout) whatever mode ``model`` was in, batch by batch."""
    if batch_size < 1:
        raise BenchError(f"batch_size = {batch_size}", where="lavic embed", hint="use 1 or more")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            parts = [view_embeddings(model, views.batch(images[i:i + batch_size]), layer=layer)
                     .to("cpu", dtype) for i in range(0, len(images), batch_size)]
    finally:
        model.train(was_training)
    hidden = llava(model).config.text_config.hidden_size
    return torch.cat(parts) if parts else torch.empty(0, views.views, hidden, dtype=dtype)
