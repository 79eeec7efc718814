"""Exact, deterministic top-k: best score first, equal scores broken by the lower item index.

Deterministic ties matter because retrieval lists feed hit-rate metrics and candidate-set
hashes: two runs (or two libraries, for the BM25 parity check) must return the same list.
``dot_top_k`` scores large catalogs chunk by chunk and keeps a running top-k, so the full
queries x items score matrix is never held in memory.
"""

from __future__ import annotations

import numpy as np

#: Items scored per step; with QUERY_BLOCK queries a step holds ~16 MiB of float32 scores.
CHUNK_SIZE = 16_384
QUERY_BLOCK = 256


def top_k(
    scores: np.ndarray, k: int, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` (n, m): the ``min(k, m)`` best as ``(ids, scores)``, both (n, k).

    ``ids`` (n, m) names each column (default: its position) and breaks ties, lowest first.
    Only entries at or above each row's k-th largest score are sorted, so the cost is linear in
    ``m`` unless a row has many ties at its threshold.
    """
    n, m = scores.shape
    if ids is None:
        ids = np.broadcast_to(np.arange(m), (n, m))
    k = min(k, m)
    if k <= 0 or n == 0:
        return np.empty((n, 0), dtype=ids.dtype), np.empty((n, 0), dtype=scores.dtype)
    if k < m:
        kth = np.partition(scores, m - k, axis=1)[:, m - k, None]
        rows, cols = np.nonzero(scores >= kth)
    else:
        rows, cols = np.divmod(np.arange(n * m), m)
    cand_scores = scores[rows, cols]
    cand_ids = ids[rows, cols]
    order = np.lexsort((cand_ids, -cand_scores, rows))
    starts = np.searchsorted(rows[order], np.arange(n))
    take = order[(starts[:, None] + np.arange(k)).ravel()]
    return cand_ids[take].reshape(n, k), cand_scores[take].reshape(n, k)


class RunningTopK:
    """Top-k of score columns that arrive in chunks (``push(chunk_scores, first_index)``)."""

    def __init__(self, n_rows: int, k: int) -> None:
        self.k = k
        self.ids = np.empty((n_rows, 0), dtype=np.int64)
        self.scores: np.ndarray | None = None

    def push(self, scores: np.ndarray, start: int) -> None:
        n, m = scores.shape
        chunk_ids = np.broadcast_to(np.arange(start, start + m, dtype=np.int64), (n, m))
        ids, best = top_k(scores, self.k, chunk_ids)
        if self.scores is not None:
            ids, best = top_k(
                np.concatenate([self.scores, best], axis=1),
                self.k,
                np.concatenate([self.ids, ids], axis=1),
            )
        self.ids, self.scores = ids, best


def dot_top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    query_block: int = QUERY_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """The items with the largest ``queries @ items.T``: ``(ids, scores)``, (n_queries, k').

    ``k' = min(k, n_items)``. Memory beyond the inputs is O(query_block x chunk_size), whatever
    the catalog size. BLAS may round the same dot product differently with another chunking,
    so *distinct* items whose float32 scores differ by ~1e-6 can swap with ``chunk_size``;
    identical item vectors are best scored once (see ``EmbeddingRetriever``).
    """
    width = min(k, len(items))
    ids = np.empty((len(queries), width), dtype=np.int64)
    scores = np.empty((len(queries), width), dtype=np.result_type(queries, items))
    for q0 in range(0, len(queries), query_block):
        block = queries[q0 : q0 + query_block]
        running = RunningTopK(len(block), k)
        for start in range(0, len(items), chunk_size):
            running.push(block @ items[start : start + chunk_size].T, start)
        ids[q0 : q0 + len(block)] = running.ids
        if running.scores is not None:
            scores[q0 : q0 + len(block)] = running.scores
    return ids, scores
