"""Cold vs warm embedding cache: the same SBERT grid run twice in one process.

Both runs write to fresh output folders, so nothing is resumed: the only difference is the
embedding cache (cold: empty cache dir; warm: the one the cold run filled). The warm run must
not load the model at all. Prints a markdown table; the target is warm >= 20x faster.

    python benchmarks/warm_cache.py [--size medium] [--retriever sbert]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="medium")
    parser.add_argument("--retriever", default="sbert")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="warm-cache-"))
    os.environ["BENCH_CACHE_DIR"] = str(work / "cache")

    from bench.core.config import load, override
    from bench.execution.runner import Grid
    from bench.task.data.synthetic import ensure_synthetic

    data = ensure_synthetic(seed=0, size=args.size, cache_dir=work / "data")
    base = override(
        load(), retrievers=(args.retriever,), models=("none",), dataset="synthetic", data_dir=data
    )
    rows = []
    for label in ("cold", "warm"):
        spec = override(base, out=str(work / label))
        started = time.perf_counter()
        payloads = Grid(spec, progress=False, echo=lambda _: None).run()
        wall = time.perf_counter() - started
        retrieval = sum(p["timings"]["retrieval_s"] for p in payloads)
        hr = [round(p["metrics"]["hr@1"], 4) for p in payloads]
        rows.append((label, wall, retrieval, hr))
    (_, cold_wall, cold_ret, cold_hr), (_, warm_wall, warm_ret, warm_hr) = rows
    assert cold_hr == warm_hr, "a warm cache must not change results"
    print(f"| {args.retriever} grid, synthetic {args.size}, 3 domains | wall s | retrieval s |")
    print("|---|---:|---:|")
    for label, wall, retrieval, _ in rows:
        print(f"| {label} | {wall:.2f} | {retrieval:.2f} |")
    print(
        f"| **cold / warm** | **{cold_wall / warm_wall:.1f}x** | **{cold_ret / warm_ret:.1f}x** |"
    )


if __name__ == "__main__":
    main()
