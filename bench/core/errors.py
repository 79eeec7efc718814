"""User-facing errors and counted warnings.

A user mistake (bad file, unknown name, bad config) must surface as one line that says what,
where (``file:line`` or a config key) and what to do -- never as a traceback. Recoverable data
problems become *counted* warnings that are recorded in results.json, so that no metric
denominator ever changes silently.
"""

from __future__ import annotations

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
    """Counts data problems by code and keeps the first example of each; :meth:`lines` gives
    one line per code, printed once, so a thousand bad lines never flood the console."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, code: str, message: str, *, where: str | None = None) -> None:
        self.counts[code] += 1
        self.first.setdefault(code, f"{where}: {message}" if where else message)

    def merge(self, other: Warnings) -> None:
        self.counts.update(other.counts)
        for code, line in other.first.items():
            self.first.setdefault(code, line)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def lines(self) -> list[str]:
        """``warning [code] xN: first example`` per code, in code order."""
        return [f"warning [{code}] x{n}: {self.first[code]}" for code, n in self.as_dict().items()]
