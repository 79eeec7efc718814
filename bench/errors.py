"""User-facing errors and counted warnings.

A user mistake (bad file, unknown name, bad config) must surface as one line that says what,
where (``file:line`` or a config key) and what to do -- never as a traceback. Recoverable data
problems become *counted* warnings that are recorded in results.json, so that no metric
denominator ever changes silently.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field


class BenchError(Exception):
    """An error caused by the user's input; the CLI prints :meth:`one_line` and exits 2."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        parts = [f"{self.where}: " if self.where else "", self.what]
        if self.hint:
            parts.append(f" ({self.hint})")
        return "error: " + "".join(parts).replace("\n", " ")


@dataclass
class Warnings:
    """Counts data problems by code; prints the first few of each code once, to stderr."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    echo: bool = True
    max_echo: int = 3

    def add(self, code: str, message: str, *, where: str | None = None) -> None:
        self.counts[code] += 1
        line = f"{where}: {message}" if where else message
        shown = self.examples.setdefault(code, [])
        if len(shown) < self.max_echo:
            shown.append(line)
            if self.echo:
                print(f"warning [{code}]: {line}", file=sys.stderr)

    def merge(self, other: Warnings) -> None:
        self.counts.update(other.counts)
        for code, lines in other.examples.items():
            mine = self.examples.setdefault(code, [])
            mine.extend(lines[: max(0, self.max_echo - len(mine))])

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
