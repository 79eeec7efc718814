"""BM25 speed and parity: the bm25s ``okapi`` retriever vs ``rank_bm25.BM25Okapi(epsilon=0)``.

A seeded synthetic catalog of product-like titles and long Reddit-like requests (no dataset
needed). rank_bm25 scores every document in Python per query term, so it is timed on a sample
of queries only; the same sample checks that both give identical top-10 lists (ties broken by
catalog index in both).

    python benchmarks/bm25_speed.py [--items 50000] [--queries 2000] [--sample 50]
"""

from __future__ import annotations

import argparse
import random
import time

from rank_bm25 import BM25Okapi

from baselines.retrievers.bm25 import BM25Retriever, tokenize
from baselines.retrievers.common import query_text
from baselines.retrievers.topk import top_k
from bench.task.data.schema import Catalog, Conversation, Item

_FILLER_TEXT = (
    "i am looking for a something that would work with my it should be not too the and "
    "really want any ideas thanks in advance has anyone tried this kind of thing before "
    "budget is around dollars preferably under also does matter if it comes with"
)
_SYLLABLE_TEXT = "ka lo mi nu re sa ti vo ze bra cor del fin gal hex jor lux mar nov pel qua ros"
FILLER = _FILLER_TEXT.split()
SYLLABLES = _SYLLABLE_TEXT.split()


def word(rng: random.Random) -> str:
    return "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3)))


def make_world(n_items: int, n_queries: int, seed: int) -> tuple[Catalog, list[Conversation]]:
    """Titles: brand + Zipf-distributed product words; queries: filler + title words."""
    rng = random.Random(seed)
    vocab = list(dict.fromkeys(word(rng) for _ in range(30_000)))
    brands = [word(rng).capitalize() for _ in range(2_000)]
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    items = {}
    for i in range(n_items):
        words = rng.choices(vocab, weights, k=rng.randint(4, 14))
        asin = f"B{i:09d}"
        items[asin] = Item(asin, f"{rng.choice(brands)} {' '.join(words)} {rng.randint(1, 99)} oz")
    conversations = []
    titles = [item.title for item in items.values()]
    for q in range(n_queries):
        target = rng.choice(titles).split()
        words = rng.choices(FILLER, k=rng.randint(60, 160)) + rng.sample(target, len(target) // 2)
        words += rng.choices(vocab, weights, k=rng.randint(5, 30))
        rng.shuffle(words)
        half = len(words) // 2
        context = (
            f"<submission>{' '.join(words[:half])}</submission>\n"
            f"<comment>{' '.join(words[half:])}</comment>"
        )
        conversations.append(Conversation(str(q), context))
    return Catalog(items), conversations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--sample", type=int, default=50, help="queries timed with rank_bm25")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    catalog, conversations = make_world(args.items, args.queries, args.seed)
    n_tokens = sum(len(tokenize(query_text(c))) for c in conversations) / len(conversations)

    start = time.perf_counter()
    ours = BM25Retriever()
    ours.index(catalog)
    ours_index_s = time.perf_counter() - start
    start = time.perf_counter()
    ours_lists = ours.search(conversations, 10)
    ours_search_s = time.perf_counter() - start

    start = time.perf_counter()
    reference = BM25Okapi([tokenize(item.title) for item in catalog], k1=1.5, b=0.75, epsilon=0)
    ref_index_s = time.perf_counter() - start
    sample = random.Random(args.seed + 1).sample(range(len(conversations)), args.sample)
    asins = list(catalog.items)
    same = 0
    start = time.perf_counter()
    for q in sample:
        scores = reference.get_scores(tokenize(query_text(conversations[q])))
        ids, _ = top_k(scores[None, :], 10)
        same += [asins[i] for i in ids[0]] == ours_lists[q]
    ref_search_s = time.perf_counter() - start

    ours_qps = len(conversations) / ours_search_s
    ref_qps = len(sample) / ref_search_s
    print(
        f"catalog {len(catalog):,} titles; {len(conversations):,} queries "
        f"(mean {n_tokens:.0f} tokens after stopwords); top-10\n"
    )
    print("| engine | index (s) | queries timed | search (s) | queries/s |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| bm25s okapi (ours) | {ours_index_s:.2f} | {len(conversations):,} | "
        f"{ours_search_s:.2f} | {ours_qps:,.1f} |"
    )
    print(
        f"| rank_bm25 BM25Okapi(epsilon=0) | {ref_index_s:.2f} | {len(sample):,} | "
        f"{ref_search_s:.2f} | {ref_qps:,.2f} |"
    )
    print(f"\nspeed-up: {ours_qps / ref_qps:,.0f}x (target >= 50x)")
    print(
        f"identical top-10 on the sample: {same}/{len(sample)} = {same / len(sample):.0%} "
        "(target 100%)"
    )


if __name__ == "__main__":
    main()
