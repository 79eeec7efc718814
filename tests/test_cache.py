"""Embedding cache: warm reruns encode nothing, keys follow the model, torn shards are skipped."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
from safetensors import safe_open

from bench.cache import EmbeddingCache, encoder_key


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
