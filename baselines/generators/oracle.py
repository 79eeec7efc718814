"""An upper bound for vision: a generator that reads the synthetic items' true attributes.

It parses what the conversation asks for with the synthetic world's lexicon and picks the
candidate matching the most of it, so on the synthetic dataset it approaches the share of
conversations whose answer is among the candidates -- the ceiling any visual model could reach.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import NoOptions, takes
from bench.task.data.synthetic import ATTRIBUTES_FILE, GENERATOR_VERSION, requested_attributes
from bench.task.protocols import Choice, Request


class OracleGenerator:
    identity = f"oracle(synthetic attributes, lexicon v{GENERATOR_VERSION})"

    def __init__(self) -> None:
        self._attributes: dict[Path, dict[str, dict[str, str]]] = {}

    def _table(self, request: Request) -> dict[str, dict[str, str]]:
        """The attributes file of the dataset the candidates' pictures come from (cached)."""
        paths = [c.image_path for c in request.candidates if c.image_path is not None]
        if not paths:
            raise BenchError(
                "the oracle generator only works on the synthetic dataset "
                "(candidates have no image paths)",
                where=f"conversation {request.conversation.id}",
            )
        root = Path(paths[0]).parent.parent  # root/train_images/X.jpg
        if root not in self._attributes:
            file = root / ATTRIBUTES_FILE
            if not file.is_file():
                raise BenchError(
                    f"the oracle generator only works on the synthetic dataset ({file} is missing)",
                    hint="run it with the synthetic dataset",
                )
            self._attributes[root] = json.loads(file.read_text(encoding="utf-8"))
        return self._attributes[root]

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        choices: list[Choice] = []
        for request in requests:
            if not request.candidates:
                choices.append(Choice(None, raw="no candidates", failure="no_id"))
                continue
            table = self._table(request)
            wanted = requested_attributes(request.conversation.context)
            matches = {
                i.asin: [k for k, v in wanted.items() if table.get(i.asin, {}).get(k) == v]
                for i in request.candidates
            }
            best = max(matches, key=lambda asin: len(matches[asin]))  # first of equals
            asked = ", ".join(f"{k}={v}" for k, v in wanted.items()) or "nothing recognised"
            raw = (f"{best}: matches {len(matches[best])}/{len(wanted)} "
                   f"({', '.join(matches[best])}); asked {asked}")
            choices.append(Choice(best, raw=raw))
        return choices


@takes(NoOptions)
def build(ctx: BuildContext) -> OracleGenerator:
    ctx.parse(NoOptions, "[generators.oracle]")
    return OracleGenerator()
