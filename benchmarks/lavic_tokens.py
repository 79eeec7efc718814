"""LaViC's prompt tokens per conversation against titles only and entire any-resolution images.

The same conversations (synthetic world, test split, the shipped ``candidates_st``), the same
prompt (``bench.task.prompt.render``, the paper's Table 11, in Mistral's ``<s>[INST] ... [/INST]``)
and the real Mistral v1 tokenizer as ``benchmarks/token_economy.py``; LaViC rows for 1, 5
(the paper) and 9 views per image, and the split of LaViC's extra tokens into image slots and
the text the image variant of the prompt adds (its instruction sentence and one newline per
slot). Run ``python benchmarks/lavic_tokens.py --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.errors import BenchError
from bench.task.data.schema import DOMAINS
from bench.task.data.synthetic import ensure_synthetic
from bench.task.prompt import render
from benchmarks.token_economy import (
    MistralV1Tokenizer,
    fetch_tokenizer,
    inst_chunks,
    llava_next_image_tokens,
    load_corpus,
    prompt_tokens,
)

VIEWS = (1, 5, 9)


def rows(tok: MistralV1Tokenizer, size: str, seed: int) -> list[list[str]]:
    root = ensure_synthetic(size=size, seed=seed)
    table = []
    for domain in DOMAINS:
        cases = load_corpus(root, domain, "test", f"synthetic-{size}").cases
        titles = images = 0.0
        lavic = dict.fromkeys(VIEWS, 0.0)
        for case in cases:
            text = render(case.context, case.items, False)
            slotted = render(case.context, case.items, True)
            for chunk in inst_chunks(text) + inst_chunks(slotted):
                tok.count(chunk)
            titles += prompt_tokens(tok.count, text, [])
            for views in VIEWS:
                lavic[views] += prompt_tokens(tok.count, slotted, [views] * len(case.sizes))
            images += prompt_tokens(tok.count, slotted,
                                    [llava_next_image_tokens(h, w) for h, w in case.sizes])
        n = len(cases)
        slots = 5 * sum(len(c.sizes) for c in cases) / n
        table.append([domain, n, f"{titles / n:,.1f}",
                      *(f"{lavic[v] / n:,.1f}" for v in VIEWS), f"{images / n:,.0f}",
                      f"{slots:.1f} + {(lavic[5] - titles) / n - slots:.1f}",
                      f"{images / lavic[5]:.1f}x"])
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-size", default="medium", choices=("small", "medium"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        tok = MistralV1Tokenizer(fetch_tokenizer())
        body = rows(tok, args.synthetic_size, args.seed)
    except BenchError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    head = ["domain", "convs", "titles only", *(f"LaViC {v} views" for v in VIEWS),
            "entire any-res", "LaViC 5 - titles = slots + text", "entire / LaViC 5"]
    print(tabulate(body, head, tablefmt="pipe", disable_numparse=True,
                   colalign=["left"] + ["right"] * (len(head) - 1)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
