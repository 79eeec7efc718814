"""Images per second of LaViC's input pipeline with 0, 1, 2 DataLoader workers.

Three measurements on the same photo-sized JPEGs (``--side`` px, quality 90, written once):

* ``distill input``: stage 1's collator over a DataLoader of batch 4 -- JPEG decoding, the real
  model's 5 views at 336 px (``lavic.model.views.ViewMaker`` on the 7B's config) and tokenising --
  with nothing consuming the batches: the pipeline's own rate;
* ``distill input + GPU step``: the same, the main process then waiting ``--step`` seconds per
  batch, as it waits for a GPU's training step (a sleep: no CPU is used, as on a GPU);
* ``describe (tiny model)``: ``lavic.stage1.describe.describe`` end to end on the tiny LLaVA-NeXT
  (greedy, 128 new tokens, batch 4), workers decoding and running the processor while the main
  process generates; the model load (a fraction of a second) is included.

0 workers does everything on the main thread. Every setting runs ``--repeats`` times, the
settings interleaved so machine noise hits them alike; the best rate of each is kept. Run
``OMP_NUM_THREADS=1 python benchmarks/lavic_workers.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars inside the timings

import numpy as np
from PIL import Image
from tabulate import tabulate
from torch.utils.data import DataLoader

from bench.core.errors import Warnings
from lavic.model.arch import real_config
from lavic.model.tiny import IMAGE, char_tokenizer, tiny_folder
from lavic.model.views import ViewMaker
from lavic.stage1.data import Described, ImageToDescribe
from lavic.stage1.describe import describe
from lavic.stage1.distill import Collator

BATCH = 4


def photos(folder: Path, count: int, side: int) -> list[Path]:
    """Smooth colour fields with shapes and grain: JPEGs that decode like product photos."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:side, 0:side] / side
    paths = []
    for i in range(count):
        base = rng.uniform(40, 220, 3)
        pixels = base + 60 * np.stack([np.sin(6 * x + i), np.cos(5 * y - i), x * y], -1)
        cx, cy, r = rng.uniform(0.2, 0.8, 3) * [1, 1, 0.4]
        pixels[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
        pixels += rng.normal(0, 6, pixels.shape)
        path = folder / f"P{i:04d}_0.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def distill_input(paths: list[Path], workers: int, step: float = 0.0) -> float:
    tokenizer = char_tokenizer()
    collator = Collator(tokenizer, ViewMaker(real_config()),
                        tokenizer.convert_tokens_to_ids(IMAGE), max_length=1024)
    data = [Described(title=f"item {i}", image=p, description="a thing with a round patch")
            for i, p in enumerate(paths)]
    loader = DataLoader(data, batch_size=BATCH, num_workers=workers, collate_fn=collator)
    start = time.perf_counter()
    seen = 0
    for batch in loader:
        seen += len(batch["pixels"])
        time.sleep(step)
    return seen / (time.perf_counter() - start)


def describe_tiny(paths: list[Path], workers: int, model: Path, scratch: Path) -> float:
    targets = [ImageToDescribe(split="train", asin=p.stem[:-2], index=0, title=f"item {i}",
                               image=p, release="") for i, p in enumerate(paths)]
    out = Path(tempfile.mkdtemp(dir=scratch))  # an empty answer cache every time
    start = time.perf_counter()
    done, _ = describe(targets, str(model), out, batch_size=BATCH, workers=workers,
                       device="cpu", dtype="fp32", warnings=Warnings())
    return len(done) / (time.perf_counter() - start)


def best_rates(measure: Callable[[int], float], workers: list[int], repeats: int
               ) -> dict[int, float]:
    rates: dict[int, float] = {w: 0.0 for w in workers}
    for _ in range(repeats):
        for w in workers:
            rates[w] = max(rates[w], measure(w))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64, help="JPEGs for the input pipeline")
    parser.add_argument("--describe-images", type=int, default=32,
                        help="of those, described by the tiny model")
    parser.add_argument("--side", type=int, default=1000, help="JPEG side in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=float, default=0.25,
                        help="seconds of a (simulated) GPU training step per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = photos(root / "images", args.images, args.side)
        model = root / "tiny"
        tiny_folder(model)
        rows = {
            "distill input (decode + 5 views + tokens)": best_rates(
                lambda w: distill_input(paths, w), args.workers, args.repeats),
            f"distill input + {args.step:g} s GPU step per batch": best_rates(
                lambda w: distill_input(paths, w, args.step), args.workers, args.repeats),
            "describe (tiny model, end to end)": best_rates(
                lambda w: describe_tiny(paths[:args.describe_images], w, model, root),
                args.workers, args.repeats),
        }
    head = ["pipeline", *(f"{w} workers img/s" for w in args.workers),
            *(f"{w} vs 0" for w in args.workers if w)]
    body = [[name, *(f"{rates[w]:.1f}" for w in args.workers),
             *(f"{rates[w] / rates[0]:.2f}x" for w in args.workers if w)]
            for name, rates in rows.items()]
    print(f"{args.images} JPEGs of {args.side}x{args.side} px ({args.describe_images} "
          f"described), batch {BATCH}, best of {args.repeats}, {os.cpu_count()} CPUs")
    print(tabulate(body, head, tablefmt="pipe", disable_numparse=True,
                   colalign=("left", *["right"] * (len(head) - 1))))


if __name__ == "__main__":
    main()
