"""BM25 over item titles, on ``bm25s`` (sparse precomputed scores: fast on 100k-item catalogs).

Two variants, sharing one tokenizer (lowercase, runs of letters/digits, a fixed English
stopword list, no stemming -- stemming would need PyStemmer and the reference has none):

* ``okapi`` (default) -- ``bm25s.BM25(method="atire", idf_method="robertson")`` with float64
  scores. ATIRE's term-frequency part is Robertson's ``tf*(k1+1) / (tf + k1*(1-b+b*dl/avgdl))``
  and Robertson's idf ``log((N-df+0.5)/(df+0.5))`` is clamped at 0 by bm25s, which is exactly
  ``rank_bm25.BM25Okapi(epsilon=0)`` (negative idf floored at ``0 * mean idf``). rank_bm25 is
  what most published conversational-recommendation baselines call "BM25", so this is the
  default: the top-k lists equal rank_bm25's (tests/test_retrievers.py checks the top-10).
* ``lucene`` -- bm25s' own default, Lucene's idf ``log(1 + (N-df+0.5)/(df+0.5))``, which never
  reaches 0, so terms in over half the titles still count a little.

Options: ``variant``, ``k1`` (1.5), ``b`` (0.75), ``with_description``. Ties (equal scores,
including items that share no term with the query) go to the lower catalog index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import bm25s
import numpy as np
from pydantic import Field

from baselines.retrievers.common import doc_text, query_text
from baselines.retrievers.topk import top_k
from bench.core.context import BuildContext
from bench.core.options import Options, takes
from bench.execution import progress
from bench.task.data.schema import Catalog, Conversation

#: Bumped whenever tokenize() changes, so identities (and anything keyed on them) change too.
TOKENIZER_VERSION = 1
VARIANTS = {"okapi": ("atire", "robertson"), "lucene": ("lucene", "lucene")}
#: Scores held at once while ranking: rows x catalog size float64 (~64 MiB).
_SCORE_BUDGET = 8_000_000

_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    im ive id dont doesnt didnt isnt wasnt cant wont thats s t d ll m re ve
    don doesn didn isn wasn aren couldn shouldn wouldn
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercased runs of letters/digits (any script), English stopwords dropped.

    Apostrophes split words ("don't" -> "don", "t"); the clitic halves are stopwords.
    """
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


class BM25Options(Options):
    variant: Literal["okapi", "lucene"] = "okapi"
    k1: float = Field(1.5, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    with_description: bool = False


class BM25Retriever:
    ordered = True

    def __init__(
        self,
        *,
        variant: str = "okapi",
        k1: float = 1.5,
        b: float = 0.75,
        with_description: bool = False,
    ) -> None:
        self.variant, self.k1, self.b = variant, float(k1), float(b)
        self.with_description = with_description
        self.identity = (
            f"bm25[bm25s={bm25s.__version__};variant={variant};k1={self.k1};b={self.b};"
            f"tokenizer=v{TOKENIZER_VERSION};with_description={with_description}]"
        )
        self._asins: list[str] = []
        self._vocab: dict[str, int] = {}
        self._model: bm25s.BM25 | None = None

    def index(self, catalog: Catalog) -> None:
        self._asins = list(catalog.items)
        vocab: dict[str, int] = {}
        docs = [
            [vocab.setdefault(t, len(vocab)) for t in tokenize(text)]
            for text in (doc_text(item, self.with_description) for item in catalog)
        ]
        self._vocab = vocab
        self._model = None
        if vocab:  # bm25s cannot index a corpus without a single token; all scores are 0 then
            method, idf_method = VARIANTS[self.variant]
            self._model = bm25s.BM25(
                k1=self.k1, b=self.b, method=method, idf_method=idf_method, dtype="float64"
            )
            self._model.index((docs, vocab), create_empty_token=False, show_progress=False)

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every catalog item for one query text (catalog order)."""
        ids = [self._vocab[t] for t in tokenize(text) if t in self._vocab]
        if self._model is None or not ids:
            return np.zeros(len(self._asins))
        return self._model.get_scores_from_ids(ids)

    def search(self, conversations: Sequence[Conversation], k: int) -> list[list[str]]:
        rows = max(1, _SCORE_BUDGET // max(1, len(self._asins)))
        texts = [query_text(c) for c in conversations]
        out: list[list[str]] = []
        for start in progress.bar(
            range(0, len(texts), rows), desc="bm25", unit="block", quiet=len(texts) <= rows
        ):
            block = texts[start : start + rows]
            scores = np.stack([self.scores(t) for t in block])
            best, _ = top_k(scores, k)
            out.extend([self._asins[i] for i in row] for row in best)
        return out


@takes(BM25Options)
def build(ctx: BuildContext) -> BM25Retriever:
    return BM25Retriever(**ctx.parse(BM25Options, "[retrievers.bm25]").model_dump())
