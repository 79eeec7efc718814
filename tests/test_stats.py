"""bench/task/stats.py: exact McNemar, Holm, conversation bootstrap; results.load / pairs."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest

from bench.core import registry
from bench.core.config import RunSpec
from bench.core.errors import BenchError
from bench.execution.runner import Grid
from bench.execution.store import PREDICTIONS_FILE
from bench.results.frames import load, pairs
from bench.task.stats import bootstrap_ratio, cell_intervals, holm, mcnemar_exact, resample_counts

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"


def test_mcnemar_exact_p_is_the_two_sided_binomial() -> None:
    # 7 pairs hit by A alone, 2 by B alone, 5 by both, 6 by neither.
    a = [1] * 7 + [0] * 2 + [1] * 5 + [0] * 6
    b = [0] * 7 + [1] * 2 + [1] * 5 + [0] * 6
    result = mcnemar_exact(a, b)
    hand = 2 * sum(comb(9, i) for i in range(3)) / 2**9  # P(X <= 2) + P(X >= 7), X ~ B(9, 1/2)
    assert (result.a_only, result.b_only) == (7, 2)
    assert result.p == pytest.approx(hand) and result.p == pytest.approx(0.1796875)
    assert mcnemar_exact(b, a).p == pytest.approx(hand)
    assert mcnemar_exact([1, 0], [1, 0]).p == 1.0  # no discordant pair: no evidence


def test_holm_adjusts_in_order_and_keeps_input_order() -> None:
    adjusted = holm([0.04, 0.01, 0.03, 0.5])
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> 0.09 (monotone), 0.5*1=0.5
    assert adjusted == pytest.approx([0.09, 0.04, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_bootstrap_is_seeded_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(1)
    hits = rng.integers(0, 2, 300)
    ci = bootstrap_ratio(hits, np.ones(300), seed=3)
    assert ci is not None and ci.low < ci.estimate < ci.high
    assert ci.estimate == pytest.approx(hits.mean())
    assert ci == bootstrap_ratio(hits, np.ones(300), seed=3)
    assert not np.array_equal(resample_counts(300, 50, 3), resample_counts(300, 50, 4))
    # Binomial standard error ~0.029: the 95% interval is about +-0.057 wide.
    assert 0.09 < ci.high - ci.low < 0.14
    assert bootstrap_ratio([], []) is None and bootstrap_ratio([0, 0], [0, 0]) is None


def test_bootstrap_keeps_a_conversations_pairs_together() -> None:
    # Every conversation has 2 pairs, both hit or both missed: resampling conversations gives
    # the interval of 50 coin flips, not the narrower one of 100 independent pairs.
    conv = np.array([1, 0] * 25)
    together = bootstrap_ratio(2 * conv, np.full(50, 2.0), seed=0)
    apart = bootstrap_ratio(np.repeat(conv, 2), np.ones(100), seed=0)
    assert together is not None and apart is not None
    assert (together.high - together.low) > 1.2 * (apart.high - apart.low)
    counts = resample_counts(50, 10, seed=0)
    assert counts.shape == (10, 50) and (counts.sum(axis=1) == 50).all()


def test_cell_intervals_follow_the_metrics() -> None:
    records = [{"prediction": "a", "gt_items": ["a", "b"], "candidates": ["a"]},
               {"prediction": None, "gt_items": ["c"], "candidates": ["c"]}] * 20
    found = cell_intervals(records, {"hr@1": 20 / 60, "hr@1_conv": 0.5, "valid_ratio": None},
                           resamples=200, seed=5)
    assert (found["seed"], found["resamples"], found["level"]) == (5, 200, 0.95)
    assert found["valid_ratio"] is None
    low, high = found["hr@1"]
    assert low < 1 / 3 < high and found["hr@1_conv"][0] < 0.5 < found["hr@1_conv"][1]


@pytest.fixture
def run(release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    registry.load_plugins()
    registry.include(PLUGIN)
    out = tmp_path / "o"
    spec = RunSpec(dataset="reddit-amazon", domains=("all_beauty",), split="test",
                   retrievers=("toy-overlap",), models=("toy-slow", "none"), out=str(out),
                   dataset_tables={"reddit-amazon": {"data_dir": str(release)}})
    Grid(spec, progress=False, echo=lambda _: None, resamples=300).run()
    return out


def test_results_json_intervals_and_load(run: Path) -> None:
    frame = load(run).set_index("model")
    assert set(frame.index) == {"none", "toy-slow"}
    slow = frame.loc["toy-slow"]
    assert slow["hr@1_low"] <= slow["hr@1"] <= slow["hr@1_high"]
    assert slow["valid_ratio_low"] <= slow["valid_ratio"] == 1.0
    assert np.isnan(frame.loc["none", "valid_ratio_low"])  # the retriever alone: VR is null
    assert (slow["n_pairs"], slow["usage.cost_usd"]) == (13, pytest.approx(0.012))
    assert frame["candidate_set_hash"].nunique() == 1  # same retriever: paired cells


def test_pairs_recover_hr1(run: Path) -> None:
    long = pairs(run)
    assert len(long) == 2 * 13  # two cells, 13 (conversation, ground truth) pairs each
    frame = load(run).set_index("model")
    for model, group in long.groupby("model"):
        assert group["hit"].mean() == pytest.approx(frame.loc[model, "hr@1"])
    slow = long[long["model"] == "toy-slow"]
    assert (slow["position"] == 0).all()  # toy-slow always answers the first shown item
    two = slow[slow["conversation"] == slow["conversation"].iloc[2]]
    assert two["pair"].tolist() == [0, 1]  # the fixture's conversation 1 has two ground truths


def test_pairs_without_predictions_is_one_line(run: Path) -> None:
    next(run.rglob(PREDICTIONS_FILE)).unlink()
    with pytest.raises(BenchError, match="no predictions for this cell"):
        pairs(run)
    (run / "empty").mkdir()
    with pytest.raises(BenchError, match=r"no results\.json"):
        load(run / "empty")
