"""Reading a candidate ID out of free text, and classifying what went wrong.

The parser accepts any 10-character alphanumeric token (ASINs may start with a digit), then
matches against *this* conversation's candidates only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.protocols import Choice

_TOKEN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{10}(?![A-Za-z0-9])")

NO_ID = "no_id"
OUTSIDE = "outside_candidates"
SEVERAL = "several_ids"


def parse_choice(raw: str, candidates: Sequence[str], usage: dict | None = None) -> Choice:
    """One ID among the candidates -> that ID. Several distinct candidate IDs -> the first,
    flagged ``several_ids``. IDs only outside the candidates -> None, ``outside_candidates``.
    Nothing ID-shaped -> None, ``no_id``. Matching ignores case, answers use the catalog's."""
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
    usage = usage or {}
    if len(found) == 1:
        return Choice(found[0], raw, usage)
    if found:
        return Choice(found[0], raw, usage, failure=SEVERAL)
    return Choice(None, raw, usage, failure=OUTSIDE if outside else NO_ID)
