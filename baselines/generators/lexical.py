"""A text-only floor: the candidate whose title shares the most words with the conversation.

Titles of the synthetic items rarely state colour, pattern or shape, so this baseline shows
how far a system gets without seeing the product.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.context import BuildContext
from bench.protocols import Choice, Request

_TOKEN = re.compile(r"[a-z0-9]+")
# Function words, plus the context's <submission>/<comment> tags.
STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "i",
        "if", "in", "is", "it", "its", "me", "my", "of", "on", "one", "or", "so", "that", "the",
        "this", "to", "was", "with", "you", "your", "any", "do", "just", "not", "can", "im", "ive",
        "id", "dont", "submission", "comment"
    }
)


def tokens(text: str) -> set[str]:
    return {t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS}


class LexicalGenerator:
    identity = "lexical(title token overlap)"

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        choices: list[Choice] = []
        for request in requests:
            if not request.candidates:
                choices.append(Choice(None, raw="no candidates", failure="no_id"))
                continue
            context = tokens(request.conversation.context)
            best, best_shared = None, -1
            for item in request.candidates:  # strict '>' keeps the first of equals
                shared = len(context & tokens(item.title))
                if shared > best_shared:
                    best, best_shared = item.asin, shared
            choices.append(Choice(best, raw=f"{best}: {best_shared} title tokens shared"))
        return choices


def build(ctx: BuildContext) -> LexicalGenerator:
    return LexicalGenerator()
