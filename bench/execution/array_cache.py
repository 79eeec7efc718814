"""On-disk cache of arrays keyed by bytes, so re-running a cell never recomputes them.

Rows of one fixed shape and dtype (a text's embedding, an image's patch features, in bf16 if
wanted) are stored under the sha256 of a key made of bytes (the text, an image's hash, a
checkpoint's hash). Layout: ``ROOT/<sha256(key)[:32]>/`` holds ``key.json`` (the key in clear,
for people) and append-only shards ``<time>-<pid>-<rand>.safetensors``, each with two tensors:
``hashes`` (n x 32 uint8) and ``vectors`` (n x ...). The cache *key* names the producer exactly
(see :func:`encoder_key`: weights fingerprint, pooling, max length, normalisation), so a
changed model can never be served stale rows. Reads use ``get_slice``: only the rows asked for
(in contiguous runs) leave the disk.

Crash safety: a shard is written to a temporary name, fsynced and renamed, so readers only ever
see whole shards; :meth:`EmbeddingCache.embed` flushes a shard every ``flush_rows`` new rows, so
a crash loses at most one shard of work. A shard that still fails to load (disk trouble, a
hand-copied partial file) or disagrees with the others' row shape or dtype is skipped with a
warning -- its rows are simply computed again. Only safetensors and JSON are read: no pickle.
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
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bench.execution import progress

FORMAT = 1
SHARD_SUFFIX = ".safetensors"
Encode = Callable[[list[str]], np.ndarray]
#: safetensors' dtype names -> torch (a shard of any other dtype is skipped)
DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32,
          "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
          "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


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


def row_hash(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def text_hash(text: str) -> bytes:
    return row_hash(text.encode("utf-8"))


def _runs(pairs: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """Sorted (row, position) pairs split where rows stop being contiguous (repeats allowed)."""
    run: list[tuple[int, int]] = []
    for pair in pairs:
        if run and pair[0] > run[-1][0] + 1:
            yield run
            run = []
        run.append(pair)
    if run:
        yield run


class ArrayCache:
    """Rows of one producer (``key``), looked up by bytes, many rows at a time."""

    def __init__(self, root: Path, key: str, *, flush_rows: int = 4096) -> None:
        self.key = key
        self.dir = Path(root) / hashlib.sha256(f"v{FORMAT}\n{key}".encode()).hexdigest()[:32]
        self.flush_rows = flush_rows
        self._where: dict[bytes, tuple[Path, int]] | None = None
        self._row: tuple[tuple[int, ...], torch.dtype] | None = None  # of every shard

    def missing(self, keys: Sequence[bytes]) -> list[int]:
        """Positions of the keys that have no row yet."""
        where = self._index()
        return [i for i, k in enumerate(keys) if row_hash(k) not in where]

    def read(self, keys: Sequence[bytes]) -> torch.Tensor:
        """The rows of ``keys`` (len(keys), ...) in their stored dtype; every key must exist."""
        absent = self.missing(keys)
        if absent:
            raise KeyError(f"{len(absent)} of {len(keys)} keys have no row in {self.dir}")
        shape, dtype = self._row or ((), torch.float32)
        out = torch.empty((len(keys), *shape), dtype=dtype)
        for positions, rows in self._blocks([row_hash(k) for k in keys]):
            out[positions] = rows
        return out

    def write(self, keys: Sequence[bytes], rows: torch.Tensor | np.ndarray) -> None:
        """Store one shard: row ``i`` of ``rows`` under ``keys[i]`` (any shape, any dtype)."""
        self._write([row_hash(k) for k in keys], rows)

    def _blocks(self, hashes: Sequence[bytes]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(positions, rows) per contiguous run of stored rows; only those rows are read."""
        where = self._index()
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for position, h in enumerate(hashes):
            if h in where:
                shard, row = where[h]
                by_shard.setdefault(shard, []).append((row, position))
        for shard, pairs in by_shard.items():
            with safe_open(shard, framework="pt") as fh:
                stored = fh.get_slice("vectors")
                for run in _runs(sorted(pairs)):
                    start = run[0][0]
                    block = stored[start : run[-1][0] + 1]
                    offsets = torch.tensor([row - start for row, _ in run])
                    yield torch.tensor([p for _, p in run]), block[offsets]

    def _index(self) -> dict[bytes, tuple[Path, int]]:
        """Row hash -> (shard, row), read once from every readable shard (oldest wins)."""
        if self._where is not None:
            return self._where
        where: dict[bytes, tuple[Path, int]] = {}
        for shard in sorted(self.dir.glob(f"*{SHARD_SUFFIX}")):
            try:
                with safe_open(shard, framework="pt") as fh:
                    hashes = fh.get_tensor("hashes").numpy()
                    stored = fh.get_slice("vectors")
                    shape, dtype = tuple(stored.get_shape()), DTYPES[stored.get_dtype()]
                if hashes.ndim != 2 or hashes.shape[1] != 32 or shape[0] != len(hashes):
                    raise ValueError(f"inconsistent shapes {hashes.shape} / {shape}")
                if self._row is not None and (shape[1:], dtype) != self._row:
                    raise ValueError(f"rows {shape[1:]} {dtype} differ from {self._row}")
            except Exception as exc:  # any unreadable shard is skipped, never fatal
                warnings.warn(
                    f"ignoring unreadable embedding cache shard {shard}: {exc}", stacklevel=3
                )
                continue
            self._row = (shape[1:], dtype)
            for row, h in enumerate(hashes):
                where.setdefault(h.tobytes(), (shard, row))
        self._where = where
        return where

    def _write(self, hashes: list[bytes], rows: torch.Tensor | np.ndarray) -> None:
        tensor = torch.from_numpy(rows) if isinstance(rows, np.ndarray) else rows
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.shape[0] != len(hashes):
            raise ValueError(f"{tensor.shape[0]} rows for {len(hashes)} keys")
        if not hashes:
            return
        self._index()  # learns the stored rows' shape and dtype
        row = (tuple(tensor.shape[1:]), tensor.dtype)
        if self._row not in (None, row):
            raise ValueError(f"rows {row} differ from the cache's {self._row}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_key()
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SHARD_SUFFIX}"
        final = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        digest = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, 32)
        save_file({"hashes": torch.from_numpy(digest.copy()), "vectors": tensor}, str(tmp))
        _fsync(tmp)
        tmp.replace(final)
        self._row = row
        where = self._index()
        for position, h in enumerate(hashes):
            where.setdefault(h, (final, position))

    def _write_key(self) -> None:
        path = self.dir / "key.json"
        if path.exists():
            return
        tmp = self.dir / f".key.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT, "key": self.key}, indent=1) + "\n")
        tmp.replace(path)


class EmbeddingCache(ArrayCache):
    """Float32 text embeddings of one encoder, keyed by the UTF-8 text."""

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
            out = np.empty((len(texts), *(self._row[0] if self._row else (0,))), np.float32)
        known = [h for h in rows if h not in todo]
        for positions, block in self._blocks(known):
            targets = [t for p in positions.tolist() for t in rows[known[p]]]
            repeats = torch.tensor([len(rows[known[p]]) for p in positions.tolist()])
            out[targets] = block.float().repeat_interleave(repeats, dim=0).numpy()
        return out

    def _encode(
        self, todo: dict[bytes, str], encode: Encode, batch_size: int, desc: str
    ) -> Iterator[tuple[list[bytes], np.ndarray]]:
        """Encode ``todo`` batch by batch, flushing a shard every ``flush_rows`` vectors."""
        if not todo:
            return
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
                    self._flush(pending)
                    pending = []
                bar.update(len(batch))
                yield batch, vectors
        if pending:
            self._flush(pending)

    def _flush(self, batches: list[tuple[list[bytes], np.ndarray]]) -> None:
        self._write([h for b, _ in batches for h in b], np.concatenate([v for _, v in batches]))


def _fsync(path: Path) -> None:
    with path.open("rb+") as fh:
        os.fsync(fh.fileno())
