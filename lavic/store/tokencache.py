"""The ``entire-tokens`` ablation's image rows (:mod:`lavic.model.fulltokens`), computed once
per image and read from disk afterwards.

Rows are stored in the model's dtype (2,885 x 4,096 bf16 values are 23.6 MB per image), one
store per (token count, dtype), and read back as ``(tokens, 1, hidden)``: each token fills one
placeholder slot. Keys and file decoding are the view cache's (:class:`ImageRows`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from bench.execution.array_cache import ArrayCache
from lavic.model.embed import llava
from lavic.model.fulltokens import Tokens
from lavic.store.viewcache import CACHE_DIR, ImageRows


class TokenCache(ImageRows):
    """Every image's entire-token rows, one store per (token count, dtype): a store's rows
    share a shape, and rows of another dtype are other numbers."""

    def __init__(self, root: Path, *, base: str, full: Tokens, hidden: int) -> None:
        super().__init__()
        self.full, self.hidden, self.root = full, hidden, Path(root) / CACHE_DIR
        self.key = "lavic-full-tokens;" + json.dumps({"base": base, **full.settings()},
                                                      sort_keys=True)
        self.store = ArrayCache(self.root, self.key)  # names the producer in identities
        self.counts: dict[bytes, int] = {}
        self.dtype = torch.float32  # of the rows :meth:`read` returns: the last fill's model
        self._stores: dict[tuple[int, torch.dtype], ArrayCache] = {}

    def _store(self, tokens: int) -> ArrayCache:
        at = (tokens, self.dtype)
        if at not in self._stores:
            self._stores[at] = ArrayCache(self.root, f"{self.key};tokens={tokens};"
                                          f"dtype={str(self.dtype).removeprefix('torch.')}")
        return self._stores[at]

    def fill(self, model: torch.nn.Module, images: dict[bytes, Image.Image],
             batch_size: int = 16) -> int:
        self.dtype = next(llava(model).model.multi_modal_projector.parameters()).dtype
        groups: dict[int, list[bytes]] = {}
        for key, image in images.items():
            self.counts[key] = self.full.count(image)
            groups.setdefault(self.counts[key], []).append(key)
        done = 0
        for tokens, keys in groups.items():
            store = self._store(tokens)
            todo = [keys[i] for i in store.missing(keys)]
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                rows = self.full.embed(model, [images[k] for k in batch])
                if rows.shape[1] != tokens:
                    raise RuntimeError(f"{rows.shape[1]} image features, {tokens} counted")
                store.write(batch, rows)
            done += len(todo)
        return done

    def read(self, keys: list[bytes]) -> torch.Tensor:
        rows = [self._store(self.counts[k]).read([k])[0] for k in keys]
        flat = torch.cat(rows) if rows else torch.zeros(0, self.hidden, dtype=self.dtype)
        return flat.unsqueeze(1)
