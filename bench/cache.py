"""On-disk cache of text embeddings, so re-running a cell never re-encodes a catalog.

Layout: ``ROOT/<sha256(key)[:32]>/`` holds ``key.json`` (the key in clear, for people) and
append-only shards ``<time>-<pid>-<rand>.safetensors``, each with two tensors: ``hashes``
(n x 32 uint8, sha256 of the UTF-8 text) and ``vectors`` (n x d float32). The *key* names the
encoder exactly (see :func:`encoder_key`: weights fingerprint, pooling, max length,
normalisation), so a changed model can never be served stale vectors.

Crash safety: a shard is written to a temporary name, fsynced and renamed, so readers only ever
see whole shards; encoding flushes a shard every ``flush_rows`` new vectors, so a crash loses at
most one shard of work. A shard that still fails to load (disk trouble, a hand-copied partial
file) is skipped with a warning -- its texts are simply encoded again. Only safetensors and
JSON are read: no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from bench import progress

FORMAT = 1
SHARD_SUFFIX = ".safetensors"
Encode = Callable[[list[str]], np.ndarray]


def encoder_key(
    model: str,
    *,
    weights: str,
    pooling: str,
    max_length: int | None,
    normalization: str,
    **extra: object,
) -> str:
    """The canonical description of an encoder: everything that changes its vectors."""
    fields: dict[str, object] = {
        "model": model,
        "weights": weights,
        "pooling": pooling,
        "max_length": max_length,
        "norm": normalization,
        **extra,
    }
    return ";".join(f"{name}={value}" for name, value in fields.items())


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Embeddings of one encoder (``key``), looked up by text hash, many texts at a time."""

    def __init__(self, root: Path, key: str, *, flush_rows: int = 4096) -> None:
        self.key = key
        self.dir = Path(root) / hashlib.sha256(f"v{FORMAT}\n{key}".encode()).hexdigest()[:32]
        self.flush_rows = flush_rows
        self._where: dict[bytes, tuple[Path, int]] | None = None

    def embed(
        self, texts: Sequence[str], encode: Encode, *, batch_size: int, desc: str = "encoding"
    ) -> np.ndarray:
        """Vectors (len(texts), d) for ``texts``; only texts never seen before are encoded.

        ``encode`` receives batches of at most ``batch_size`` distinct texts, longest first
        (batches of similar length pad little), and returns one float32 row per text. New
        vectors go straight into the result and to disk: memory holds one copy plus a shard.
        """
        rows: dict[bytes, list[int]] = {}
        for position, text in enumerate(texts):
            rows.setdefault(text_hash(text), []).append(position)
        where = self._index()
        todo = {h: texts[positions[0]] for h, positions in rows.items() if h not in where}
        out: np.ndarray | None = None
        for batch, vectors in self._encode(todo, encode, batch_size, desc):
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            for h, vector in zip(batch, vectors, strict=True):
                out[rows[h]] = vector
        if out is None:
            out = np.empty((len(texts), self._dim()), dtype=np.float32)
        by_shard: dict[Path, tuple[list[int], list[int]]] = {}
        for h, positions in rows.items():
            if h not in todo:
                shard, row = where[h]
                targets, sources = by_shard.setdefault(shard, ([], []))
                targets.extend(positions)
                sources.extend([row] * len(positions))
        for shard, (targets, sources) in by_shard.items():
            with safe_open(shard, framework="numpy") as fh:
                out[targets] = fh.get_tensor("vectors")[sources]
        return out

    def _encode(
        self, todo: dict[bytes, str], encode: Encode, batch_size: int, desc: str
    ) -> Iterator[tuple[list[bytes], np.ndarray]]:
        """Encode ``todo`` batch by batch, flushing a shard every ``flush_rows`` vectors."""
        if not todo:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_key()
        order = sorted(todo, key=lambda h: -len(todo[h]))
        pending: list[tuple[list[bytes], np.ndarray]] = []
        with progress.bar(
            total=len(order), desc=desc, unit="text", quiet=len(order) <= batch_size
        ) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                vectors = np.asarray(encode([todo[h] for h in batch]), dtype=np.float32)
                if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                    raise RuntimeError(
                        f"encoder returned shape {vectors.shape} for {len(batch)} texts"
                    )
                pending.append((batch, vectors))
                if sum(len(b) for b, _ in pending) >= self.flush_rows:
                    self._write_shard(pending)
                    pending = []
                bar.update(len(batch))
                yield batch, vectors
        if pending:
            self._write_shard(pending)

    def _dim(self) -> int:
        """Vector size from any shard (0 for an empty cache: nothing to embed anyway)."""
        for shard in dict.fromkeys(path for path, _ in self._index().values()):
            with safe_open(shard, framework="numpy") as fh:
                return int(fh.get_slice("vectors").get_shape()[1])
        return 0

    def _index(self) -> dict[bytes, tuple[Path, int]]:
        """Text hash -> (shard, row), read once from every readable shard (oldest wins)."""
        if self._where is not None:
            return self._where
        where: dict[bytes, tuple[Path, int]] = {}
        dim: int | None = None
        for shard in sorted(self.dir.glob(f"*{SHARD_SUFFIX}")):
            try:
                with safe_open(shard, framework="numpy") as fh:
                    hashes = fh.get_tensor("hashes")
                    shape = fh.get_slice("vectors").get_shape()
                if hashes.ndim != 2 or hashes.shape[1] != 32 or shape[0] != len(hashes):
                    raise ValueError(f"inconsistent shapes {hashes.shape} / {shape}")
                if dim is not None and shape[1] != dim:
                    raise ValueError(f"dimension {shape[1]} differs from {dim}")
            except Exception as exc:  # any unreadable shard is skipped, never fatal
                warnings.warn(
                    f"ignoring unreadable embedding cache shard {shard}: {exc}", stacklevel=3
                )
                continue
            dim = shape[1]
            for row, h in enumerate(hashes):
                where.setdefault(h.tobytes(), (shard, row))
        self._where = where
        return where

    def _write_shard(self, batches: list[tuple[list[bytes], np.ndarray]]) -> None:
        hashes = [h for batch, _ in batches for h in batch]
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SHARD_SUFFIX}"
        final = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        save_file(
            {
                "hashes": np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, 32),
                "vectors": np.concatenate([vectors for _, vectors in batches]),
            },
            str(tmp),
        )
        _fsync(tmp)
        tmp.replace(final)
        where = self._index()
        for row, h in enumerate(hashes):
            where.setdefault(h, (final, row))

    def _write_key(self) -> None:
        path = self.dir / "key.json"
        if path.exists():
            return
        tmp = self.dir / f".key.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT, "key": self.key}, indent=1) + "\n")
        tmp.replace(path)


def _fsync(path: Path) -> None:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())
