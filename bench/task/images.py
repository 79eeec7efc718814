"""The one rule for "is this product image usable", shared by the runner, every generator and
``bench data validate --decode-images``, so an image counts as bad in exactly the same cases
everywhere: missing, empty, truncated, or not an image at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


@dataclass(frozen=True)
class ImageFile:
    """A decoded RGB image and its file bytes, or the reason it cannot be used."""

    image: Image.Image | None
    data: bytes = b""
    problem: str | None = None


def read_image(path: Path | None) -> ImageFile:
    """Read and fully decode ``path`` (``Image.load``, so a truncated file is caught too)."""
    if path is None:
        return ImageFile(None, problem="no image file")
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return ImageFile(None, problem="image file missing")
    except OSError as exc:
        return ImageFile(None, problem=f"image unreadable ({exc.strerror})")
    if not data:
        return ImageFile(None, problem="image file empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return ImageFile(image.convert("RGB"), data)
    except Image.UnidentifiedImageError:
        return ImageFile(None, data, "not an image")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return ImageFile(None, data, f"image truncated or corrupt ({exc})")


def image_problem(path: Path | None) -> str | None:
    """None when ``path`` is a usable image, else what is wrong with it."""
    return read_image(path).problem
