"""Each item image's view embeddings, computed once and read from disk afterwards.

Stage 2 freezes the whole vision side, so an image's ``views`` vectors never change during
fine-tuning or inference: they are computed once (eval mode, no gradient) with the vision side
that stage 2 uses -- the base model with the stage-1 adapter merged, or the base alone for the
``no-distill`` variant -- and kept in an
:class:`~bench.execution.array_cache.ArrayCache`. The cache key names the producer exactly:
base weights, stage-1 adapter hash (``none`` without one), the view maker's processor settings
and the vision layer; rows are keyed by the image file's sha256.
Training and inference only read rows, so neither runs the vision tower.

A candidate without a usable image is shown as the authors' white 336 px square
(``bench.task.images`` decides what is unusable); all such candidates share one row.

Filling streams: a batch of files is decoded, embedded on the model's device, written and
dropped before the next is read, so memory is set by the batch, not the catalog. Rows are
stored in the dtype of the model that computed them (bf16 on disk for a bf16 model), one store
per dtype: a bf16 vision side gives other numbers than a float32 one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image

from baselines.generators.hf import load_image
from bench.execution import progress
from bench.execution.array_cache import ArrayCache
from lavic.model.embed import embed_images, llava
from lavic.model.views import ViewMaker

MISSING = b"missing-image:white-square"  # the row of every candidate without a usable image
CACHE_DIR = "lavic-views"


def image_key(data: bytes) -> bytes:
    """The row key of an image file's bytes (``b""``: no usable image)."""
    return hashlib.sha256(data).digest() if data else MISSING


class ImageRows:
    """What both image caches share: image files decoded once per process and keyed by the
    sha256 of their bytes (or :data:`MISSING`); subclasses compute and store the rows."""

    store: ArrayCache

    def __init__(self) -> None:
        self._paths: dict[Path | None, bytes] = {}

    def fill(self, model: torch.nn.Module, images: dict[bytes, Image.Image],
             batch_size: int = 16) -> int:
        """Compute the rows of the images whose key has none yet; returns how many."""
        raise NotImplementedError

    def read(self, keys: list[bytes]) -> torch.Tensor:
        """The rows of ``keys`` as ``(vectors, views, llm_hidden)`` in key order."""
        raise NotImplementedError

    def fill_paths(self, model: torch.nn.Module, paths: Iterable[Path | None],
                   batch_size: int = 16) -> int:
        """:meth:`fill` for image files (e.g. a catalog), ``batch_size`` files at a time: each
        batch is decoded, filled and dropped before the next is read; each file is decoded
        once per process."""
        new = [path for path in dict.fromkeys(paths) if path not in self._paths]
        done = 0
        with progress.bar(total=len(new), desc="embedding images", unit="image",
                          quiet=len(new) <= batch_size) as bar:
            for start in range(0, len(new), batch_size):
                images: dict[bytes, Image.Image] = {}  # the previous batch is freed here
                for path in new[start:start + batch_size]:
                    image, data = load_image(path)
                    key = self._paths[path] = image_key(data)
                    images.setdefault(key, image)
                done += self.fill(model, images, batch_size)
                bar.update(len(new[start:start + batch_size]))
        return done

    def key_of(self, path: Path | None) -> bytes:
        """The row key of an image file given to :meth:`fill_paths` before."""
        return self._paths[path]


class ViewCache(ImageRows):
    """``(views, llm_hidden)`` rows, one per distinct image, for one vision side, in the dtype
    of the model that fills them."""

    def __init__(self, root: Path, *, base: str, stage1: str, views: ViewMaker, layer: int,
                 hidden: int) -> None:
        super().__init__()
        self.views, self.layer, self.hidden = views, layer, hidden
        self.settings = {"base": base, "stage1": stage1, "layer": layer,
                         "views": views.settings()}
        key = "lavic-views;" + json.dumps(self.settings, sort_keys=True)
        self.root = Path(root) / CACHE_DIR
        self.store = ArrayCache(self.root, key)  # names the producer in identities
        self.dtype = torch.float32  # of the rows :meth:`read` serves: the last fill's model's
        self._stores: dict[torch.dtype, ArrayCache] = {}

    def rows(self, dtype: torch.dtype) -> ArrayCache:
        """The store of the rows computed in ``dtype``."""
        if dtype not in self._stores:
            name = str(dtype).removeprefix("torch.")
            self._stores[dtype] = ArrayCache(self.root, f"{self.store.key};dtype={name}")
        return self._stores[dtype]

    def fill(self, model: torch.nn.Module, images: dict[bytes, Image.Image],
             batch_size: int = 16) -> int:
        self.dtype = next(llava(model).model.multi_modal_projector.parameters()).dtype
        store = self.rows(self.dtype)
        keys = list(images)
        todo = [keys[i] for i in store.missing(keys)]
        if todo:
            rows = embed_images(model, [images[k] for k in todo], self.views,
                                layer=self.layer, batch_size=batch_size, dtype=self.dtype)
            store.write(todo, rows)
        return len(todo)

    def read(self, keys: list[bytes]) -> torch.Tensor:
        if not keys:
            return torch.zeros(0, self.views.views, self.hidden, dtype=self.dtype)
        return self.rows(self.dtype).read(keys)
