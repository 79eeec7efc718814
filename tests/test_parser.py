"""The ID parser: the authors' rule ("paper") and the robust one, on adversarial answers."""

from __future__ import annotations

import re

import pytest

from bench.task.parser import MIXED, NO_ID, OUTSIDE, SEVERAL, parse_choice

CANDIDATES = ["B000000001", "B000000002", "B0A1B2C3D4", "0123456789"]


def authors_rule(raw: str) -> str | None:
    """The authors' evaluation (jeon185/LaViC, src/prompt_tuning.py): the first match of
    this regex in the stripped output; their validity check then requires a candidate."""
    match = re.findall(r"\bB[A-Z0-9]{9}\b", raw.strip())
    return match[0][:10] if match else None


# answer -> (paper: item, failure), (robust: item, failure)
TABLE = [
    ("B000000002", ("B000000002", None), ("B000000002", None)),
    (" ID: B000000002.\n", ("B000000002", None), ("B000000002", None)),
    ("**B000000002**", ("B000000002", None), ("B000000002", None)),
    ("b000000002", (None, NO_ID), ("B000000002", None)),  # lower case
    ("B0a1b2c3d4", (None, NO_ID), ("B0A1B2C3D4", None)),
    ("0123456789", (None, NO_ID), ("0123456789", None)),  # digit-first (ISBN-like) ASIN
    ("B000000002_", (None, NO_ID), ("B000000002", None)),  # "_" is a word character for \b
    ("éB000000002", (None, NO_ID), ("B000000002", None)),  # so is "é"
    ("B0000000021", (None, NO_ID), (None, NO_ID)),  # eleven characters
    ("B000000002B000000001", (None, NO_ID), (None, NO_ID)),  # glued together
    ("I recommend the teal one", (None, NO_ID), (None, NO_ID)),
    ("specialized recommendation", (None, NO_ID), (None, NO_ID)),  # ten-letter words
    ("", (None, NO_ID), (None, NO_ID)),
    ("B0ZZZZZZZ9", (None, OUTSIDE), (None, OUTSIDE)),
    ("B0ZZZZZZZ9 or B000000002", (None, OUTSIDE), ("B000000002", MIXED)),
    ("B000000002 or B0ZZZZZZZ9", ("B000000002", MIXED), ("B000000002", MIXED)),
    ("b0zzzzzzz9 or B000000002", ("B000000002", None), ("B000000002", MIXED)),
    ("B000000002 or B000000001", ("B000000002", SEVERAL), ("B000000002", SEVERAL)),
    ("B000000002, B0ZZZZZZZ9, B000000001", ("B000000002", SEVERAL), ("B000000002", SEVERAL)),
    ("B000000002, yes B000000002", ("B000000002", None), ("B000000002", None)),
]


@pytest.mark.parametrize(("raw", "paper", "robust"), TABLE)
def test_both_rules_on_adversarial_answers(raw: str, paper: tuple, robust: tuple) -> None:
    for rule, (item, failure) in (("paper", paper), ("robust", robust)):
        choice = parse_choice(raw, CANDIDATES, {"prompt_tokens": 3}, rule=rule)
        assert (choice.item_id, choice.failure) == (item, failure), rule
        assert choice.raw == raw and choice.usage == {"prompt_tokens": 3}


@pytest.mark.parametrize("raw", [row[0] for row in TABLE])
def test_paper_rule_answers_as_the_authors_evaluation(raw: str) -> None:
    """Same answer as the authors' rule wherever it is valid; a miss wherever it is not."""
    first = authors_rule(raw)
    choice = parse_choice(raw, CANDIDATES, rule="paper")
    assert choice.item_id == (first if first in CANDIDATES else None)
    assert (choice.item_id is None) == (choice.failure in (NO_ID, OUTSIDE))


def test_a_candidate_next_to_a_foreign_id_keeps_a_failure_class() -> None:
    for rule in ("paper", "robust"):
        choice = parse_choice("B000000001 (not B9ZZZZZZZ9)", CANDIDATES, rule=rule)
        assert (choice.item_id, choice.failure) == ("B000000001", MIXED)


def test_the_rule_is_part_of_a_local_generators_identity() -> None:
    from baselines.generators.hf import Settings
    from bench.core.context import BuildContext

    def settings(**options: object) -> Settings:
        return Settings.from_context(BuildContext(options={"device": "cpu", **options}),
                                     "llava-1.6", vision=True)

    paper, robust = settings(), settings(id_parser="robust")
    assert paper.id_parser == "paper" and "id_parser=paper" in paper.describe()
    assert "id_parser=robust" in robust.describe()
    assert (paper.max_new_tokens, paper.batch_size) == (10, 4)
    assert settings(images=True).batch_size == 1  # ten images fill a 32k context
    assert settings(images=True, batch_size=2).batch_size == 2
