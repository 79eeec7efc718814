"""Each image becomes a fixed number of views (sub-images), whatever else is in the batch.

LLaVA-1.6's any-resolution processor picks a grid per image (3 to 5 views for the real model's
pinpoints) and zero-pads a batch to its largest image, so the views an image gets, and the
placeholder slots they fill, depend on its neighbours. LaViC needs exactly 5 views per image:
the base view (the whole image resized to the vision tower's side) and a 2x2 grid of the image
resized with its aspect ratio kept and padded to a square. That is the model's own PIL processor
with a single grid pinpoint, run one image at a time.

Beyond the paper, 1 view (the base only) and 9 views (base + 2 rows x 4 columns) trade tokens
per image against detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import LlavaNextConfig

try:  # transformers >= 5.x's PIL backend; 5.0's default processor is the PIL/numpy one
    from transformers import LlavaNextImageProcessorPil as ImageProcessor
except ImportError:  # pragma: no cover - depends on the installed transformers
    from transformers import LlavaNextImageProcessor as ImageProcessor

from bench.core.errors import BenchError
from lavic.model.arch import preprocessor_settings

# views per image -> (rows, columns) of the grid that follows the base view
VIEW_GRIDS: dict[int, tuple[int, int]] = {1: (1, 1), 5: (2, 2), 9: (2, 4)}
DEFAULT_VIEWS = 5


class ViewMaker:
    """Turns one PIL image into a ``(views, 3, side, side)`` tensor of normalised pixels."""

    def __init__(self, config: LlavaNextConfig, views: int = DEFAULT_VIEWS) -> None:
        if views not in VIEW_GRIDS:
            raise BenchError(f"views = {views} is not supported", where="lavic views",
                             hint=f"use one of {sorted(VIEW_GRIDS)}")
        self.views = views
        rows, cols = VIEW_GRIDS[views]
        self.side = int(config.vision_config.image_size)
        self._settings = preprocessor_settings(config)
        # one pinpoint: every image gets the same grid; no padding across a batch
        self._settings.update(image_grid_pinpoints=[[rows * self.side, cols * self.side]],
                              do_pad=False)
        self._processor = ImageProcessor(**self._settings)

    def settings(self) -> dict[str, Any]:
        """Everything that changes the pixels: part of every cache key built on the views."""
        return {"views": self.views, "grid": list(VIEW_GRIDS[self.views]), **self._settings}

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = self._processor(image, return_tensors="pt",
                                 input_data_format="channels_last")["pixel_values"][0]
        return pixels[: self.views]

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(len(images), views, 3, side, side)``; image i's views never depend on image j."""
        if not images:
            return torch.empty(0, self.views, 3, self.side, self.side)
        return torch.stack([self(image) for image in images])
