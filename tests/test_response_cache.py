"""The generator response cache: hits cost nothing, errors are never stored, crashes are safe."""

from __future__ import annotations

from pathlib import Path

from bench.execution.response_cache import ResponseCache
from bench.task.protocols import Choice

KEY = "ab" + "0" * 62


def test_hit_returns_the_answer_at_zero_cost(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put_many({KEY: Choice("B000000001", "B000000001",
                                                  {"prompt_tokens": 9, "cost_usd": 0.2})})
    hit = ResponseCache(tmp_path).get(KEY)  # a new process reads it from disk
    assert hit is not None and hit.item_id == "B000000001"
    assert hit.usage == {"prompt_tokens": 9, "cost_usd": 0.0, "cached": 1}


def test_errors_are_never_cached_but_parse_failures_are(tmp_path: Path) -> None:
    other = "ab" + "1" * 62
    ResponseCache(tmp_path).put_many({KEY: Choice(None, "HTTP 500", failure="error"),
                                      other: Choice(None, "no idea", failure="no_id")})
    fresh = ResponseCache(tmp_path)
    assert fresh.get(KEY) is None
    cached = fresh.get(other)
    assert cached is not None and cached.failure == "no_id"


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    ResponseCache(tmp_path).put_many({KEY: Choice("B000000001", "x")})
    shard = next(tmp_path.glob("*.jsonl"))
    shard.write_text(shard.read_text() + '{"key": "ab22", "item_id"')  # killed mid-write
    assert ResponseCache(tmp_path).get(KEY) is not None


def test_unreadable_lines_are_counted_and_asked_again(tmp_path: Path) -> None:
    other = "ab" + "1" * 62
    ResponseCache(tmp_path).put_many({KEY: Choice("B000000001", "x")})
    shard = next(tmp_path.glob("*.jsonl"))
    good = shard.read_text()
    shard.write_text('{"key": "ab9", oops\n' + '["not", "a", "record"]\n' + good)
    cache = ResponseCache(tmp_path)
    assert cache.get(KEY) is not None and cache.get(other) is None
    assert cache.warnings.as_dict() == {"bad_cache_line": 2}
    assert cache.warnings.lines() == [f"warning [bad_cache_line] x2: {shard}:1: unreadable; "
                                      "that answer is asked again"]
