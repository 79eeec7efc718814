"""The release's precomputed candidate lists (``candidates_st``, ``candidates_gpt_large``).

They let a run reuse the paper's exact retrieval stage. The lists are *sets*, not rankings
(the release does not keep them in score order), hence ``ordered = False``: metrics that need
an order (HR@1 of the retriever alone) must not be read from them.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import NoOptions, takes
from bench.task.data.schema import Catalog, Conversation


class ShippedRetriever:
    ordered = False

    def __init__(self, field: str) -> None:
        self.field = field
        self.identity = f"dataset:{field}[shipped candidates_{field}]"

    def index(self, catalog: Catalog) -> None:
        """Nothing to build: the candidates come with each conversation."""

    def search(self, conversations: Sequence[Conversation], k: int) -> list[list[str]]:
        out: list[list[str]] = []
        for conversation in conversations:
            if self.field not in conversation.shipped_candidates:
                raise BenchError(
                    f"conversation {conversation.id!r} has no shipped candidates_{self.field}",
                    where=f"retriever dataset:{self.field}",
                    hint="this retriever needs the Reddit-Amazon release; use bm25 or a dense "
                    "retriever for other datasets",
                )
            out.append(list(conversation.shipped_candidates[self.field][:k]))
        return out


@takes(NoOptions)
def build_st(ctx: BuildContext) -> ShippedRetriever:
    ctx.parse(NoOptions, "[retrievers.dataset:st]")
    return ShippedRetriever("st")


@takes(NoOptions)
def build_gpt_large(ctx: BuildContext) -> ShippedRetriever:
    ctx.parse(NoOptions, "[retrievers.dataset:gpt_large]")
    return ShippedRetriever("gpt_large")
