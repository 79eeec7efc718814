"""Shared fixtures: a tiny dataset in the release layout, written per test; how many
pytest-xdist workers, and each one's share of the cores."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bench.execution.store import SCHEMA_VERSION

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TITLES = {
    "B000000001": "Red lipstick matte",
    "B000000002": "Blue lipstick gloss",
    "B000000003": "Green nail polish",
    "B000000004": "Ceramic vase tall",
    "1000000005": "Striped scarf wool",
    "B000000006": "Round mirror brass",
    "B000000007": "Polka dot mug",
    "B000000008": "Wooden hairbrush",
    "B000000009": "Pink compact powder",
    "B00000000A": "Silver hoop earrings",
    "B00000000B": "Black leather handbag",
    "B00000000C": "Cotton cushion cover",
}
ASINS = list(TITLES)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """What pyproject's ``-n auto`` means: 2 workers (CI has 2 cores), or none on 1 core or when
    the command names one test file -- a file runs whole on one worker (``--dist loadfile``), so
    a second would only add its start-up."""
    files = {arg.split("::")[0] for arg in config.args}
    one_file = len(files) == 1 and files.pop().endswith(".py")
    return 0 if one_file or _cores() < 2 else 2


def pytest_configure(config: pytest.Config) -> None:
    """Under N xdist workers, torch in each worker (and the ``bench`` processes tests start) uses
    cores / N threads unless ``OMP_NUM_THREADS`` is set: N pools of every core each would
    oversubscribe the machine and slow every worker down."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or "OMP_NUM_THREADS" in os.environ:
        return
    threads = max(1, _cores() // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch loads, here or in a child
    if "torch" in sys.modules:  # already loaded (by a plug-in): set its pool directly
        sys.modules["torch"].set_num_threads(threads)


def conversation(i: int, gt: list[str], context: str | None = None) -> dict:
    cands = ASINS[:10]
    return {
        "context": context or f"<submission>Looking for {TITLES[gt[0]].lower()} #{i}"
        "</submission>\n<comment>Any ideas?</comment>\n",
        "context_items": [],
        "gt": f"Try [this](https://www.amazon.com/dp/{gt[0]})",
        "gt_items": gt,
        "candidates_st": cands,
        "candidates_gpt_large": list(reversed(cands)),
    }


def write_release(root: Path, *, n: int = 12) -> Path:
    """Two domains, valid + test splits, metadata for all items, images for all but one."""
    (root / "train_images").mkdir(parents=True)
    for domain in ("all_beauty", "amazon_home"):
        for split in ("valid", "test"):
            (root / domain).mkdir(exist_ok=True)
            lines = [conversation(i, [ASINS[i % len(ASINS)]]) for i in range(n)]
            lines[1]["gt_items"] = [ASINS[1], ASINS[11]]  # two ground truths, one outside
            (root / domain / f"{split}.jsonl").write_text(
                "".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8"
            )
    meta = {a: {"title": t, "images": [{"large": "x"}], "description": f"a photo of {t}"}
            for a, t in TITLES.items()}
    (root / "item2meta_train.json").write_text(json.dumps(meta), encoding="utf-8")
    for k, asin in enumerate(ASINS[:-1]):
        Image.new("RGB", (32 + k, 24), (10 * k, 100, 200)).save(root / "train_images" /
                                                                f"{asin}_0.jpg")
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "data")


def results_payload(
    retriever: str, model: str, domain: str, hr1: float | None, vr: float | None = None,
    *, split: str = "test",
) -> dict[str, Any]:
    """A results.json with every schema-v1 key; only the key fields and HR@1 / VR mean much."""
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": {"name": "reddit-amazon", "content_hash": "abc", "root": "/data"},
        "domain": domain,
        "split": split,
        "retriever": retriever,
        "model": model,
        "retriever_identity": retriever,
        "model_identity": model,
        "metrics": {"hr@1": hr1, "hr@1_conv": hr1, "valid_ratio": vr, "recall@10": None,
                    "oracle": None, "hr@1_ceiling": None, "retriever_hr@1": None},
        "n_conversations": 10,
        "n_pairs": 10,
        "failures": {},
        "usage": {},
        "candidate_set_hash": "h",
        "config": {},
        "config_hash": "c",
        "seed": 0,
        "limit": None,
        "top_k": 10,
        "warnings": {},
        "timings": {},
        "versions": {},
        "git_commit": None,
        "created": "2025-01-01T00:00:00Z",
    }
