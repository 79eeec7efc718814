"""Embedding retrievers: encode titles and queries (through the disk cache), rank by cosine.

The encoders (``dense.py``: transformers / sentence-transformers; ``openai_emb.py``: any
``/v1/embeddings`` server) differ only in how a batch of texts becomes vectors; caching,
normalisation and the chunked exact top-k are shared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import Field, PositiveInt

from baselines.retrievers.common import doc_text, query_text
from baselines.retrievers.topk import dot_top_k
from bench.core.options import Options
from bench.execution.array_cache import EmbeddingCache
from bench.task.data.schema import Catalog, Conversation


class EmbeddingOptions(Options):
    """Options every embedding retriever accepts."""

    batch_size: PositiveInt = 32
    with_description: bool = False
    chunk_size: PositiveInt = Field(16_384, description="items scored per block in top-k")


class Encoder(Protocol):
    #: encoder_key(...) of this encoder: keys the cache and is part of the identity.
    key: str
    batch_size: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """One batch of texts -> (len(texts), d) float32 unit vectors."""
        ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, so a dot product is the cosine; an all-zero row stays zero (never NaN)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class EmbeddingRetriever:
    """Cosine top-k of item vectors against conversation vectors."""

    ordered = True

    def __init__(
        self,
        name: str,
        encoder: Encoder,
        *,
        cache_dir: Path,
        with_description: bool,
        chunk_size: int,
    ) -> None:
        self.name = name
        self.encoder = encoder
        self.with_description = with_description
        self.chunk_size = chunk_size
        self.identity = f"{name}[{encoder.key};with_description={with_description}]"
        self.cache = EmbeddingCache(Path(cache_dir) / "embeddings", encoder.key)
        self._asins: list[str] = []
        self._members: list[list[int]] = []  # distinct text -> catalog positions
        self._vectors = np.empty((0, 0), dtype=np.float32)

    def embed(self, texts: Sequence[str], desc: str) -> np.ndarray:
        return self.cache.embed(
            texts, self.encoder.encode, batch_size=self.encoder.batch_size, desc=desc
        )

    def index(self, catalog: Catalog) -> None:
        """Embeds each distinct document text once; items sharing a text share its vector."""
        self._asins = list(catalog.items)
        first: dict[str, int] = {}
        self._members = []
        for position, item in enumerate(catalog):
            group = first.setdefault(doc_text(item, self.with_description), len(first))
            if group == len(self._members):
                self._members.append([])
            self._members[group].append(position)
        self._vectors = self.embed(list(first), f"{self.name}: items")

    def search(self, conversations: Sequence[Conversation], k: int) -> list[list[str]]:
        if not self._asins:
            return [[] for _ in conversations]
        queries = self.embed([query_text(c) for c in conversations], f"{self.name}: queries")
        groups, scores = dot_top_k(queries, self._vectors, k, chunk_size=self.chunk_size)
        out = []
        for group_row, score_row in zip(groups, scores, strict=True):
            # Duplicated titles get one exact score, so they tie and go in catalog order.
            ranked = sorted(
                (-score, position)
                for group, score in zip(group_row, score_row, strict=True)
                for position in self._members[group][:k]
            )
            out.append([self._asins[position] for _, position in ranked[:k]])
        return out
