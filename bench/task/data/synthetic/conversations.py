"""Synthetic Reddit conversations: a seeker asks for a category and some visual attributes
in varied wording, amid chit-chat; the ground truths match every attribute asked, and the
candidate lists hold same-category hard negatives that miss exactly one."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.task.data.synthetic.items import Product, article, countable
from bench.task.data.synthetic.lexicon import ATTRIBUTE_KINDS, DOMAIN_SPECS, LEXICON

# Chit-chat comments: none of them may contain a lexicon phrasing (a test checks this).
CHITCHAT: tuple[str, ...] = (
    "What's your budget?",
    "Following, I need one too!",
    "Commenting so I can find this thread later lol",
    "Have you looked at thrift stores? Sometimes you get lucky.",
    "Any brand preference or are you open to anything?",
    "Great question, I've been wondering the same thing.",
    "Depends on what you need it for honestly.",
    "Is this a gift or for yourself?",
    "I'd avoid the cheap knockoffs, they fall apart fast.",
    "Following this, my sister has been hunting for one forever.",
    "Just check the reviews before you buy, some sellers are sketchy.",
    "Do you need it quickly or can you wait for a sale?",
    "My friend got one last year and still loves it.",
    "Ooh I love this kind of post.",
    "Not helpful but that sounds really cute.",
    "The local shops near me never have anything like this.",
    "Target used to carry a bunch of these.",
    "Honestly I gave up looking and just ordered online.",
)
_OPENERS = (
    "I'm looking for {c}",
    "I've been hunting for {c}",
    "Can't seem to find {c}",
    "I'd love to get {c}",
    "I'm on the lookout for {c}",
    "Anyone know where I'd find {c}",
)
_SUBMISSION_TITLES = (
    "{C} recommendations?",
    "Help me find {c}",
    "Searching for the perfect {n}",
    "ISO: {n}",
    "Where do you all buy {c}?",
    "{C} suggestions please",
)
_CLAUSES: dict[str, tuple[str, ...]] = {
    "colour": ("in a {p} shade", "that is {p}"),
    "pattern": ("with a {p} design", "with a {p} look"),
    "shape": ("that is {p}", "with a {p} silhouette"),
    "finish": ("with a {p} finish",),
}
_FOLLOW_UPS = (
    "Forgot to add: ideally one {x}.",
    "Oh and it should be one {x} if possible.",
    "Edit: bonus points for one {x}.",
)
_CONTEXT_ITEM_LINES = (
    "I already have [this one](https://www.amazon.com/dp/{a}) and like it, but I'm after"
    " something different this time.",
    "I've had [this](https://www.amazon.com/dp/{a}) for a while and it's time for a change.",
)
_GT_SINGLE = (
    "I have [this one]({u}) and it's exactly what you're describing.",
    "Try [{t}]({u}), got mine last month and love it.",
    "[This]({u}) is the one I'd go for.",
    "I think [this one]({u}) fits what you want. I've had mine for a year.",
)
_GT_MULTI = (
    "Either [this one]({u0}) or [this]({u1}) would work{more}.",
    "Check out [this]({u0}) and [this one]({u1}){more}, both are great.",
)
_MOJIBAKE = "\u00e2\u0080\u0099"  # a UTF-8 right quote read as Latin-1, as in the release


@dataclass
class Index:
    """Same-category lookups used to pick ground truths and (hard) negatives quickly."""

    by_category: dict[str, list[str]]
    by_value: dict[tuple[str, str, str], set[str]]  # (category, kind, value) -> asins
    items: dict[str, Product]

    @classmethod
    def build(cls, items: Iterable[Product]) -> Index:
        by_category: dict[str, list[str]] = {}
        by_value: dict[tuple[str, str, str], set[str]] = {}
        table: dict[str, Product] = {}
        for item in items:
            table[item.asin] = item
            by_category.setdefault(item.category.name, []).append(item.asin)
            for kind, value in item.attrs.items():
                by_value.setdefault((item.category.name, kind, value), set()).add(item.asin)
        return cls(by_category, by_value, table)

    def matching(self, category: str, request: dict[str, str], skip: str = "") -> set[str]:
        sets = [self.by_value.get((category, k, v), set()) for k, v in request.items() if k != skip]
        if not sets:
            return set(self.by_category[category])
        return set.intersection(*sets)


def _url(rng: random.Random, item: Product) -> str:
    if rng.random() < 0.5:
        return f"https://www.amazon.com/dp/{item.asin}?ref_=cm_sw_r_cp_ud_dp"
    slug = "-".join(re.findall(r"[A-Za-z0-9]+", item.title)[:5])
    return f"https://www.amazon.com/{slug}/dp/{item.asin}/"


def _candidates(
    rng: random.Random,
    index: Index,
    category: str,
    request: dict[str, str],
    gts: Sequence[str],
    excluded: set[str],
    p_gt: float,
) -> list[str]:
    """Ten shuffled ASINs like a retriever's top-10: mostly same-category, hard negatives."""
    chosen: list[str] = []
    if rng.random() < p_gt:
        chosen.append(gts[0])
        chosen.extend(g for g in gts[1:] if rng.random() < 0.5)
    # Hard negatives: match every requested attribute but one.
    hard: list[str] = []
    for kind in request:
        hard.extend(sorted(index.matching(category, request, skip=kind) - excluded))
    rng.shuffle(hard)
    chosen.extend(hard[: rng.randint(2, 4)])
    # A few items of other categories of the same domain.
    domain = index.items[gts[0]].domain
    others = [c.name for c in DOMAIN_SPECS[domain].categories if c.name != category]
    for _ in range(rng.randint(1, 2)):
        chosen.append(rng.choice(index.by_category[rng.choice(others)]))
    # Fill with same-category items; other categories only if the category is exhausted.
    pool, tries = index.by_category[category], 0
    while len(set(chosen)) < 10:
        tries += 1
        pick = rng.choice(pool if tries < 200 else index.by_category[rng.choice(others)])
        if pick not in excluded:
            chosen.append(pick)
    unique = list(dict.fromkeys(chosen))[:10]
    rng.shuffle(unique)
    return unique


def conversation(rng: random.Random, index: Index) -> tuple[dict[str, Any], dict[str, str]]:
    """One conversation record (release fields) and the attributes it asks for."""
    gt_item = index.items[rng.choice(list(index.items))]
    category = gt_item.category
    n_attrs = rng.choices((1, 2, 3), weights=(0.3, 0.45, 0.25))[0]
    kinds = ["colour"] if rng.random() < 0.8 else []
    rest = [k for k in ATTRIBUTE_KINDS if k not in kinds]
    rng.shuffle(rest)
    kinds = (kinds + rest)[:n_attrs]
    rng.shuffle(kinds)
    request = {k: gt_item.attrs[k] for k in kinds}
    matches = index.matching(category.name, request)
    n_gt = rng.choices((1, 2, 3), weights=(0.93, 0.05, 0.02))[0]
    extra = sorted(matches - {gt_item.asin})
    gts = [gt_item.asin, *rng.sample(extra, min(n_gt - 1, len(extra)))]
    # Only the chosen ground truths may be candidates among the items matching everything
    # asked; a candidate that matched everything but is not the answer would be a coin flip.
    excluded = set(matches)

    cat_phrase = rng.choice(category.phrasings)
    noun = countable(cat_phrase)
    with_article = f"{article(noun)} {noun}"
    clauses = []
    for kind in kinds:
        phrase = rng.choice(LEXICON[kind][request[kind]])
        clauses.append(rng.choice(_CLAUSES[kind]).format(p=phrase))
    follow_up = clauses.pop() if len(clauses) > 1 and rng.random() < 0.35 else None
    asked = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + " and " + clauses[-1]
    body = rng.choice(_OPENERS).format(c=with_article) + f" {asked}."
    context_items: list[str] = []
    if rng.random() < 0.1:
        pool = [a for a in index.by_category[category.name] if a not in excluded]
        if pool:
            earlier = rng.choice(pool)
            context_items.append(earlier)
            excluded.add(earlier)
            body += " " + rng.choice(_CONTEXT_ITEM_LINES).format(a=earlier)
    title = rng.choice(_SUBMISSION_TITLES).format(
        c=with_article, C=cat_phrase.capitalize(), n=cat_phrase
    )
    turns = [f"<submission>{title} {body}</submission>"]
    chat = rng.sample(CHITCHAT, rng.randint(0, 3))
    if follow_up is not None:
        chat.insert(rng.randint(0, len(chat)), rng.choice(_FOLLOW_UPS).format(x=follow_up))
    turns.extend(f"<comment>{c}</comment>" for c in chat)
    context = "\n".join(turns) + "\n"

    items = [index.items[a] for a in gts]
    if len(gts) == 1:
        gt = rng.choice(_GT_SINGLE).format(u=_url(rng, items[0]), t=items[0].title)
    else:
        more = f" and so would [this]({_url(rng, items[2])})" if len(gts) > 2 else ""
        gt = rng.choice(_GT_MULTI).format(u0=_url(rng, items[0]), u1=_url(rng, items[1]), more=more)
    if rng.random() < 0.05:
        context, gt = context.replace("'", _MOJIBAKE), gt.replace("'", _MOJIBAKE)

    record = {
        "context": context,
        "context_items": context_items,
        "gt": gt,
        "gt_items": gts,
        "candidates_gpt_large": _candidates(
            rng, index, category.name, request, gts, excluded, 0.85
        ),
        "candidates_st": _candidates(rng, index, category.name, request, gts, excluded, 0.75),
    }
    return record, {"category": category.name, **request}
