"""Reading a candidate ID out of a model's answer, and classifying what went wrong.

Two rules, chosen per generator with ``id_parser``:

* ``paper`` -- the authors' evaluation: the FIRST match of ``\\bB[A-Z0-9]{9}\\b`` (Python's
  Unicode word boundaries, case-sensitive) is the answer, valid only if it is a candidate.
  Lower case, digit-first (ISBN-like) ASINs and IDs glued to other word characters are never
  read; a first match outside the candidates is a miss even when a candidate follows it.
* ``robust`` -- any 10-character alphanumeric token, case-insensitive, matched against this
  conversation's candidates; tokens that are not candidates are skipped, so the first
  candidate named is the answer.

Both rules share the failure classes below, so ``results.json`` ``failures`` are comparable.
A failure with an ``item_id`` (``several_ids``, ``mixed_ids``) is still scored on that ID.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from bench.task.protocols import Choice

PAPER = "paper"
ROBUST = "robust"
IdParser = Literal["paper", "robust"]
ID_PARSERS: tuple[str, ...] = (PAPER, ROBUST)

NO_ID = "no_id"  # nothing the rule reads as an ID
OUTSIDE = "outside_candidates"  # the answer is an ID that is not a candidate: a miss
SEVERAL = "several_ids"  # several distinct candidates named; the first counts
MIXED = "mixed_ids"  # a candidate (the answer) and an ID that is not a candidate
OVER_BUDGET = "over_budget"  # the prompt had no room for the conversation; nothing was asked

_PAPER_ID = re.compile(r"\bB[A-Z0-9]{9}\b")
_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{10}(?![A-Za-z0-9])")


def _paper(raw: str, candidates: Sequence[str]) -> tuple[str | None, str | None]:
    found = list(dict.fromkeys(_PAPER_ID.findall(raw)))
    if not found:
        return None, NO_ID
    if found[0] not in candidates:
        return None, OUTSIDE
    rest = found[1:]
    if any(i in candidates for i in rest):
        return found[0], SEVERAL
    return found[0], MIXED if rest else None


def _robust(raw: str, candidates: Sequence[str]) -> tuple[str | None, str | None]:
    by_upper = {c.upper(): c for c in candidates}
    found: list[str] = []
    outside = False
    for token in _TOKEN.findall(raw):
        match = by_upper.get(token.upper())
        if match is None:
            # Only tokens that look like ASINs (contain a digit) count as a wrong ID;
            # ten-letter English words ("specialized") do not.
            outside = outside or any(ch.isdigit() for ch in token)
        elif match not in found:
            found.append(match)
    if not found:
        return None, OUTSIDE if outside else NO_ID
    if len(found) > 1:
        return found[0], SEVERAL
    return found[0], MIXED if outside else None


_RULES = {PAPER: _paper, ROBUST: _robust}


def parse_choice(raw: str, candidates: Sequence[str], usage: dict | None = None, *,
                 rule: str) -> Choice:
    """The answer to ``raw`` under ``rule`` (``paper`` or ``robust``); answers use the
    catalog's spelling of the ID."""
    item_id, failure = _RULES[rule](raw, candidates)
    return Choice(item_id, raw, usage or {}, failure=failure)


def over_budget(usage: dict) -> Choice:
    """The answer to a request that was not sent: no room was left for the conversation."""
    return Choice(None, "", usage, failure=OVER_BUDGET)
