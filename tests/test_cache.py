"""Array cache: warm reruns encode nothing, keys follow the model, torn shards are skipped, rows
of any shape and torch dtype come back exactly, and only the rows asked for are read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy

from bench.execution import array_cache as cache_module
from bench.execution.array_cache import ArrayCache, EmbeddingCache, encoder_key


class CountingEncoder:
    """Deterministic fake: vector = (len, vowel count, hash bits); counts calls and texts."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        return np.array(
            [[len(t), sum(c in "aeiou" for c in t), hash(t) % 97] for t in texts],
            dtype=np.float32,
        )


def texts(n: int) -> list[str]:
    return [f"item number {i} " + "x" * (i % 5) for i in range(n)]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench-cache"))
    monkeypatch.delenv("BENCH_MODELS", raising=False)


def test_warm_rerun_encodes_nothing_and_returns_identical_vectors(tmp_path: Path) -> None:
    corpus = [*texts(50), "item number 3 xxx"]  # a duplicate is encoded once
    cold_encoder = CountingEncoder()
    cold = EmbeddingCache(tmp_path, "k", flush_rows=16).embed(corpus, cold_encoder, batch_size=8)
    assert sorted(cold_encoder.texts) == sorted(set(corpus))
    assert cold_encoder.calls == 7  # 50 unique texts in batches of 8
    assert len(list(EmbeddingCache(tmp_path, "k").dir.glob("*.safetensors"))) == 4

    warm_encoder = CountingEncoder()
    warm = EmbeddingCache(tmp_path, "k").embed(corpus[::-1], warm_encoder, batch_size=8)
    assert warm_encoder.calls == 0
    np.testing.assert_array_equal(warm, cold[::-1])


def test_partial_hit_encodes_only_new_texts(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path, "k").embed(texts(10), CountingEncoder(), batch_size=4)
    encoder = CountingEncoder()
    cache = EmbeddingCache(tmp_path, "k")
    out = cache.embed([*texts(10), "brand new"], encoder, batch_size=4)
    assert encoder.texts == ["brand new"]
    assert out.shape == (11, 3)
    again = CountingEncoder()
    cache.embed(["brand new"], again, batch_size=4)  # same instance sees its own new shard
    assert again.calls == 0
    assert (cache.dir / "key.json").read_text().count('"k"') == 1


def test_key_separates_encoders(tmp_path: Path) -> None:
    base = {"weights": "m@1", "pooling": "cls", "max_length": 512, "normalization": "l2"}
    key = encoder_key("m", **base)
    assert key != encoder_key("m", **{**base, "pooling": "mean"})
    assert key != encoder_key("m", **{**base, "weights": "m@2"})
    assert key != encoder_key("m", **{**base, "max_length": 128})
    assert EmbeddingCache(tmp_path, key).dir != EmbeddingCache(tmp_path, key + "x").dir
    EmbeddingCache(tmp_path, key).embed(["a"], CountingEncoder(), batch_size=1)
    other = CountingEncoder()
    EmbeddingCache(tmp_path, encoder_key("m", **{**base, "pooling": "mean"})).embed(
        ["a"], other, batch_size=1
    )
    assert other.calls == 1


def test_torn_or_foreign_shards_are_ignored_not_fatal(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "k", flush_rows=5)
    first = cache.embed(texts(10), CountingEncoder(), batch_size=5)
    shards = sorted(cache.dir.glob("*.safetensors"))
    assert len(shards) == 2
    shards[0].write_bytes(shards[0].read_bytes()[:-7])  # torn: cut short
    (cache.dir / "zz-garbage.safetensors").write_bytes(b"\x00garbage")
    (cache.dir / ".half-written.safetensors.tmp").write_bytes(b"ignored by name")
    encoder = CountingEncoder()
    with pytest.warns(UserWarning, match="ignoring unreadable embedding cache shard"):
        again = EmbeddingCache(tmp_path, "k").embed(texts(10), encoder, batch_size=5)
    assert len(encoder.texts) == 5  # only the torn shard's texts are encoded again
    np.testing.assert_array_equal(again, first)


def test_shards_hold_only_safe_tensors(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "k")
    cache.embed(["x", "y"], CountingEncoder(), batch_size=2)
    [shard] = cache.dir.glob("*.safetensors")
    with safe_open(shard, framework="numpy") as fh:
        assert set(fh.keys()) == {"hashes", "vectors"}
        assert fh.get_tensor("hashes").dtype == np.uint8
        assert fh.get_tensor("vectors").dtype == np.float32


# --------------------------------------------------------------------------- any rows, any key


def features(n: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """n rows of 4 x 8 "patch features", distinct per row."""
    return (torch.arange(n * 32, dtype=torch.float32).reshape(n, 4, 8) / 7).to(dtype)


def image_keys(n: int) -> list[bytes]:
    return [hashlib.sha256(f"image {i}".encode()).digest() for i in range(n)]


def test_arrays_of_any_shape_keep_their_torch_dtype(tmp_path: Path) -> None:
    keys, rows = image_keys(6), features(6)
    cache = ArrayCache(tmp_path, "vision-tower@abc")
    assert cache.missing(keys) == list(range(6))
    cache.write(keys[:4], rows[:4])
    cache.write(keys[4:], rows[4:])
    fresh = ArrayCache(tmp_path, "vision-tower@abc")
    assert fresh.missing([*keys, b"never stored"]) == [6]
    got = fresh.read([keys[5], keys[0], keys[5]])
    assert got.dtype == torch.bfloat16 and got.shape == (3, 4, 8)
    assert torch.equal(got, rows[[5, 0, 5]])
    with pytest.raises(KeyError, match="1 of 2 keys"):
        fresh.read([keys[0], b"never stored"])
    with pytest.raises(ValueError, match="differ"):
        fresh.write([b"x"], features(1, torch.float32))  # one cache, one row dtype


class SliceSpy:
    """Wraps safe_open: records every slice of ``vectors`` and forbids whole-tensor reads."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.slices: list[tuple[int, int]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        spy = self

        class Handle:
            def __init__(self) -> None:
                self.fh = spy.real(*args, **kwargs)

            def __enter__(self) -> Handle:
                self.fh.__enter__()
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.__exit__(*exc)

            def get_tensor(self, name: str) -> Any:
                assert name == "hashes", "rows must be read with get_slice"
                return self.fh.get_tensor(name)

            def get_slice(self, name: str) -> Any:
                stored = self.fh.get_slice(name)

                class Sliced:
                    get_shape, get_dtype = stored.get_shape, stored.get_dtype

                    def __getitem__(self, index: slice) -> Any:
                        if name == "vectors":
                            start, stop, _ = index.indices(stored.get_shape()[0])
                            spy.slices.append((start, stop))
                        return stored[index]

                return Sliced()

        return Handle()


def test_reads_only_the_rows_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys, rows = image_keys(100), features(100)
    ArrayCache(tmp_path, "k").write(keys, rows)
    spy = SliceSpy(cache_module.safe_open)
    monkeypatch.setattr(cache_module, "safe_open", spy)
    cache = ArrayCache(tmp_path, "k")
    got = cache.read([keys[50], keys[3], keys[4], keys[5]])
    assert torch.equal(got, rows[[50, 3, 4, 5]])
    assert sorted(spy.slices) == [(3, 6), (50, 51)]


def test_text_embeddings_from_the_previous_shard_writer_are_served(tmp_path: Path) -> None:
    """Shards as the float32-only version wrote them (numpy, sha256 of the text) still hit."""
    cache = EmbeddingCache(tmp_path, "k")
    cache.dir.mkdir(parents=True)
    corpus = texts(5)
    vectors = CountingEncoder()(corpus)
    digests = np.frombuffer(b"".join(hashlib.sha256(t.encode()).digest() for t in corpus),
                            dtype=np.uint8).reshape(-1, 32)
    save_numpy({"hashes": digests, "vectors": vectors}, str(cache.dir / "0-old.safetensors"))
    encoder = CountingEncoder()
    out = EmbeddingCache(tmp_path, "k").embed([corpus[4], corpus[0], corpus[4]], encoder,
                                               batch_size=2)
    assert encoder.calls == 0
    np.testing.assert_array_equal(out, vectors[[4, 0, 4]])
