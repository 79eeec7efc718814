"""On-disk cache of generator answers, for deterministic requests.

Keyed by the generator's ``cache_key(request)`` (sha256 of model identity, the full prompt or
messages including image bytes, and decoding settings) -- never by a file or model *name*.
Storage is one append-only JSON-lines file per key prefix, fsync'd per batch; a torn last line
from a crash is ignored; any other unreadable line is counted in ``warnings`` (the answer is
simply asked again). Answers that failed after retries (``failure == "error"``) are never
stored, so a transient outage cannot become a permanent wrong answer, and a re-run retries them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, Warnings
from bench.task.protocols import Choice, Generator, Request

#: Failures that are not answers: never cached, and predicted again when a cell is re-run.
NEVER_CACHED = frozenset({"error"})
_FIELDS = ("key", "item_id", "raw", "usage", "failure")


class ResponseCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, dict[str, dict[str, Any]]] = {}
        self.warnings = Warnings()

    def _shard(self, key: str) -> Path:
        return self.root / f"{key[:2]}.jsonl"

    def _entries(self, key: str) -> dict[str, dict[str, Any]]:
        prefix = key[:2]
        if prefix not in self._loaded:
            entries: dict[str, dict[str, Any]] = {}
            path = self._shard(key)
            if path.exists():
                with path.open(encoding="utf-8", errors="replace") as fh:
                    for lineno, line in enumerate(fh, 1):
                        if not line.endswith("\n"):
                            break  # torn tail of a crashed write
                        try:
                            record = json.loads(line)
                        except json.JSONDecodeError:
                            record = None
                        if not isinstance(record, dict) or not all(f in record for f in _FIELDS):
                            self.warnings.add("bad_cache_line", "unreadable; that answer is "
                                              "asked again", where=f"{path}:{lineno}")
                            continue
                        entries[record["key"]] = record
            self._loaded[prefix] = entries
        return self._loaded[prefix]

    def get(self, key: str) -> Choice | None:
        record = self._entries(key).get(key)
        if record is None:
            return None
        usage = {**record["usage"], "cost_usd": 0.0, "cached": 1}
        return Choice(record["item_id"], record["raw"], usage, record["failure"])

    def put_many(self, answers: Mapping[str, Choice] | Iterable[tuple[str, Choice]]) -> None:
        pairs = answers.items() if isinstance(answers, Mapping) else answers
        by_shard: dict[Path, list[str]] = {}
        for key, choice in pairs:
            if choice.failure in NEVER_CACHED:
                continue
            record = {"key": key, "item_id": choice.item_id, "raw": choice.raw,
                      "usage": choice.usage, "failure": choice.failure}
            self._entries(key)[key] = record
            line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
            by_shard.setdefault(self._shard(key), []).append(line)
        self.root.mkdir(parents=True, exist_ok=True)
        for path, lines in by_shard.items():
            with path.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())

    def answer(self, generator: Generator, requests: list[Request]) -> list[Choice]:
        """Answers from this cache where possible, from ``generator`` otherwise (and stored,
        when the generator has a ``cache_key``)."""
        keyer = getattr(generator, "cache_key", None)
        keys = [keyer(r) for r in requests] if keyer else []
        answers: list[Choice | None] = (
            [self.get(k) for k in keys] if keys else [None] * len(requests)
        )
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            fresh = generator.recommend([requests[i] for i in missing])
            if len(fresh) != len(missing):
                raise BenchError(
                    f"generator returned {len(fresh)} choices for {len(missing)} requests",
                    hint="a generator must answer every request, in order",
                )
            for i, choice in zip(missing, fresh, strict=True):
                answers[i] = choice
            if keys:
                self.put_many((keys[i], answers[i]) for i in missing)
        return [a for a in answers if a is not None]
