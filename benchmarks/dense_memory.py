"""Memory of the dense retrievers' exact top-k as the catalog grows (25k ... 200k items).

Scoring runs chunk by chunk (``baselines.retrievers.topk.dot_top_k``), so its extra memory
should stay flat while only the embedding matrix itself grows. Each catalog size runs in a
fresh subprocess so that its peak RSS is its own. Random unit vectors stand in for
embeddings: the scoring cost does not depend on where the vectors came from.

    python benchmarks/dense_memory.py [--sizes 25000 50000 100000 200000] [--dim 768]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import psutil

from baselines.retrievers.topk import dot_top_k

MIB = 1024 * 1024


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Filled block by block so that generating them leaves no temporary peak behind."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):
        block = rng.standard_normal((min(8192, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + len(block)] = block
    return out


def measure(n_items: int, dim: int, n_queries: int, k: int) -> dict[str, float]:
    rng = np.random.default_rng(n_items)
    items = unit_vectors(n_items, dim, rng)
    queries = unit_vectors(n_queries, dim, rng)
    rss_before = psutil.Process().memory_info().rss
    tracemalloc.start()
    start = time.perf_counter()
    dot_top_k(queries, items, k)
    seconds = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "items": n_items,
        "embeddings_mib": items.nbytes / MIB,
        "rss_before_mib": rss_before / MIB,
        "peak_rss_mib": peak_rss / MIB,
        "scoring_rss_mib": max(0, peak_rss - rss_before) / MIB,
        "traced_peak_mib": traced_peak / MIB,
        "full_matrix_mib": n_queries * n_items * 4 / MIB,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.sizes[0], args.dim, args.queries, args.k)))
        return

    print(f"{args.queries:,} queries x catalog, dim {args.dim}, top-{args.k}, float32\n")
    print(
        "| items | embeddings (MiB) | RSS before search (MiB) | peak RSS (MiB) "
        "| scoring extra RSS (MiB) | tracemalloc peak (MiB) | full score matrix would be (MiB) "
        "| search (s) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--sizes",
            str(size),
            "--dim",
            str(args.dim),
            "--queries",
            str(args.queries),
            "--k",
            str(args.k),
        ]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(
            f"| {row['items']:,} | {row['embeddings_mib']:.0f} | {row['rss_before_mib']:.0f} "
            f"| {row['peak_rss_mib']:.0f} | {row['scoring_rss_mib']:.0f} "
            f"| {row['traced_peak_mib']:.0f} | {row['full_matrix_mib']:,.0f} "
            f"| {row['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
