"""Run by ``torchrun --nproc_per_node 2`` from test_distill: stage 1 unchanged, data-parallel.

Each rank writes its final adapter (a checksum per tensor) to ``OUT/rank<r>.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from transformers import TrainerCallback

from lavic.model.embed import llava
from lavic.model.tiny import tiny_model
from lavic.stage1.distill import DistillConfig, distill
from tests.lavic.conftest import char_tokenizer, examples


class Seen(TrainerCallback):
    """What this process's trainer saw: world size and optimizer steps."""

    def __init__(self) -> None:
        self.world, self.steps = 0, 0

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.world, self.steps = args.world_size, state.global_step


if __name__ == "__main__":
    out = Path(sys.argv[1])
    tokenizer = char_tokenizer()
    model = tiny_model(vocab_size=len(tokenizer), projector_std=1.0)
    config = DistillConfig(batch_size=2, epochs=1, learning_rate=1e-2, max_length=512, seed=3)
    rank = os.environ.get("RANK", "0")
    data, seen = examples(out / f"img{rank}", 8), Seen()  # same bytes, no write race
    distill(model, tokenizer, data[:6], data[6:], out / "run", config, callbacks=[seen])
    sums = {n: float(p.detach().double().sum()) for n, p in llava(model).named_parameters()
            if "lora_" in n}
    (out / f"rank{rank}.json").write_text(json.dumps(
        {"world": seen.world, "steps": seen.steps, "adapter": sums}), encoding="utf-8")
