"""A text-only floor: the candidate whose title shares the most words with the conversation.

Titles of the synthetic items rarely state colour, pattern or shape, so this baseline shows
how far a system gets without seeing the product.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.core.context import BuildContext
from bench.core.options import NoOptions, takes
from bench.task.protocols import Choice, Request

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
            shared = {i.asin: len(context & tokens(i.title)) for i in request.candidates}
            best = max(shared, key=shared.__getitem__)  # max keeps the first of equals
            choices.append(Choice(best, raw=f"{best}: {shared[best]} title tokens shared"))
        return choices


@takes(NoOptions)
def build(ctx: BuildContext) -> LexicalGenerator:
    ctx.parse(NoOptions, "[generators.lexical]")
    return LexicalGenerator()
