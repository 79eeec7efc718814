"""Stage-2 training step with cached view embeddings vs running the frozen vision tower.

One optimisation step of stage 2 (stage-2 LoRA on the LLM, vision side frozen, loss on the
answer tokens) on a batch of recommendation prompts (``bench.task.prompt.render``: 10 candidates,
``views`` slots each), in three ways, each in its own process so that peak memory is its own:

* ``cached``: the candidates' view embeddings are read from a tensor computed once (what
  LaViC does: the view-embedding cache);
* ``tower``: the vision tower and projector run on the candidates' views every step (pixels
  prepared once);
* ``tower+pixels``: as ``tower``, plus the image processor on every step (what training
  without any cache does).

The model is the real architecture with shrunken sizes (``--size``), on the CPU unless CUDA is
there. Run ``python benchmarks/lavic_stage2_step.py --help``.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from PIL import Image
from tabulate import tabulate
from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

from bench.task.data.schema import Item
from bench.task.prompt import IMAGE_SLOT, render
from lavic.model.arch import REAL_CONFIG
from lavic.model.embed import embed_images, spliced_inputs, view_embeddings
from lavic.model.lora import stage2
from lavic.model.tiny import char_tokenizer
from lavic.model.views import ViewMaker

MODES = ("cached", "tower", "tower+pixels")
SIZES = {  # (text hidden, text layers, vision hidden, vision layers, image side)
    "tiny": (32, 2, 16, 2, 28),
    "small": (256, 4, 256, 4, 112),
}
CANDIDATES = 10


def small_model(size: str, vocab: int) -> LlavaNextForConditionalGeneration:
    text_hidden, text_layers, vision_hidden, vision_layers, side = SIZES[size]
    raw = copy.deepcopy(REAL_CONFIG)
    raw["text_config"].update(hidden_size=text_hidden, intermediate_size=text_hidden * 3,
                              num_hidden_layers=text_layers, num_attention_heads=4,
                              num_key_value_heads=1, vocab_size=vocab)
    raw["vision_config"].update(hidden_size=vision_hidden, intermediate_size=vision_hidden * 4,
                                num_hidden_layers=vision_layers, num_attention_heads=4,
                                image_size=side, projection_dim=vision_hidden)
    raw.update(vocab_size=vocab, image_token_index=vocab - 1)
    scale = side / REAL_CONFIG["vision_config"]["image_size"]
    raw["image_grid_pinpoints"] = [[round(h * scale), round(w * scale)]
                                   for h, w in REAL_CONFIG["image_grid_pinpoints"]]
    torch.manual_seed(0)
    return LlavaNextForConditionalGeneration(LlavaNextConfig(**raw))


def measure(mode: str, size: str, views: int, batch: int, steps: int) -> dict[str, float]:
    tokenizer = char_tokenizer()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = stage2(small_model(size, len(tokenizer))).to(device)
    maker = ViewMaker(model.get_base_model().config, views)
    images = [Image.new("RGB", (60 + 7 * i, 90), (20 * i, 100, 200 - 15 * i))
              for i in range(batch * CANDIDATES)]
    items = [Item(asin=f"B{i:09d}", title=f"Product number {i} with a title") for i in
             range(CANDIDATES)]
    text = render("I want a blue round lamp for my desk. " * 8, items, True)
    slots = tokenizer.convert_ids_to_tokens(model.get_base_model().config.image_token_index)
    text = text.replace(IMAGE_SLOT, slots * views) + " Answer: B000000003</s>"
    ids = torch.tensor([tokenizer(text)["input_ids"]] * batch, device=device)
    labels = ids.clone()
    labels[:, :-12] = -100
    cached = embed_images(model, images, maker).to(device)
    pixels = maker.batch(images)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        if mode == "cached":
            vectors = cached
        else:
            with torch.no_grad():
                vectors = view_embeddings(
                    model, maker.batch(images) if mode == "tower+pixels" else pixels)
        embeds = spliced_inputs(model, ids, vectors)
        loss = model(inputs_embeds=embeds, labels=labels, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    # CPU time on a CPU (robust to other processes on a shared machine), wall time on a GPU
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    start = clock()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (clock() - start) / steps
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"step_s": seconds, "peak_mib": peak / 2**20, "tokens": ids.shape[1],
            "device": str(device)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--views", type=int, default=5, choices=(1, 5, 9))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(measure(args.mode, args.size, args.views, args.batch, args.steps)))
        return 0
    results = {}
    for mode in MODES:
        child = subprocess.run([sys.executable, __file__, "--mode", mode, "--size", args.size,
                                "--views", str(args.views), "--batch", str(args.batch),
                                "--steps", str(args.steps)],
                               capture_output=True, text=True, check=True)
        results[mode] = json.loads(child.stdout.strip().splitlines()[-1])
    base = results["cached"]
    peak = "peak GPU MiB" if base["device"].startswith("cuda") else "peak RSS MiB"
    body = [[mode, f"{r['step_s']:.3f}", f"{r['step_s'] / base['step_s']:.2f}x",
             f"{r['peak_mib']:,.0f}", f"{r['peak_mib'] / base['peak_mib']:.2f}x"]
            for mode, r in results.items()]
    clock = "wall" if base["device"].startswith("cuda") else "CPU (one thread)"
    print(f"{args.size} model, {args.views} views x {CANDIDATES} candidates, batch "
          f"{args.batch}, {base['tokens']} tokens per prompt, {base['device']}, "
          f"{clock} seconds, mean of {args.steps} steps")
    print(tabulate(body, ["mode", "s / step", "vs cached", peak, "vs cached"],
                   tablefmt="pipe", disable_numparse=True,
                   colalign=["left"] + ["right"] * 4))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
