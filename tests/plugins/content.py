"""A generator blind to position: it answers the candidate whose title shares most words with
the conversation, ties broken by ASIN (never by where the candidate is shown)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench import Choice, Request, generators


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class ByContent:
    identity = "toy-content/v1"

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        out = []
        for r in requests:
            words = _words(r.conversation.context)
            best = min(r.candidates, key=lambda i: (-len(words & _words(i.title)), i.asin))
            out.append(Choice(best.asin, best.asin))
        return out


generators.register("toy-content", lambda ctx: ByContent(), "test plug-in", origin=__file__)
