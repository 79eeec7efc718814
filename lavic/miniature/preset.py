"""The miniature's sizes: the presets, the smoke shrink, and every departure from the paper
(:meth:`Preset.cuts`) that is printed with the table and recorded in the run's spec."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

PresetName = Literal["cpu", "gpu"]
VARIANTS = ("lavic", "no-distill", "no-images")
GENERATORS = {"lavic": "lavic", "no-distill": "lavic-no-distill", "no-images": "lavic-no-images"}
DOMAINS = ("all_beauty", "amazon_fashion", "amazon_home")
PROBED = ("colour", "pattern", "shape")


@dataclass(frozen=True)
class Preset:
    """Sizes of one miniature run; ``seconds`` are the measured per-unit costs the progress
    line's estimate of the time left uses (stage-1 step, stage-2 step, one scored test
    conversation, on the machine named in ``measured_on``)."""

    world: str = "large"
    candidates: int = 4
    views: int = 1
    image_side: int = 64
    tower_layers: int = 4
    valid_conversations: int = 20  # per domain: stage 2's checkpoint choice
    test_conversations: int = 50  # per domain: the first N of the test split, fixed up front
    distill_steps: int = 100
    distill_eval_steps: int = 50
    distill_batch: int = 4
    distill_lr: float = 1e-3
    distill_max_length: int = 176  # Table 10 is ~125 tokens; colour, shape, pattern follow
    finetune_steps: int = 80
    finetune_eval_steps: int = 80
    finetune_lr: float = 1e-3
    finetune_max_length: int = 384  # instruction + 4 titles ~250 tokens, conversation ~60
    objective: Literal["generate", "listwise"] = "listwise"
    validation: Literal["generate", "score"] = "score"
    decoding: Literal["generate", "score"] = "score"
    probe_items: int = 48
    seconds: dict[str, float] = field(default_factory=lambda: {
        "distill_step": 14.5, "finetune_step": 10.0, "test_conversation": 2.5,
        "fixed": 600.0})
    measured_on: str = "2-core CPU shared with other jobs (load ~4), 1 thread"
    smoke: bool = False

    def cuts(self) -> list[str]:
        """Every departure from the paper's sizes, for the table's footer and the spec."""
        lines = []
        if self.smoke:
            lines.append("SMOKE RUN: plumbing only, the numbers mean nothing")
        if self.candidates != 10:
            lines.append(f"k = {self.candidates} candidates (the paper: 10), drawn from the "
                         "shipped SBERT lists in their order, every ground truth kept (it "
                         "replaces the lowest-ranked other candidates when the list missed it)")
        if self.views != 5:
            lines.append(f"{self.views} view(s) per image (the paper: 5)")
        lines.append(f"images at {self.image_side} px, a {self.tower_layers}-layer CLIP tower "
                     "trained from a random init (std 0.2) by stage-1 LoRA, standing in for a "
                     "pretrained CLIP")
        lines.append("LLM: SmolLM2-135M-Instruct (GGUF Q4_1, dequantised to fp32), not "
                     "Vicuna/Mistral-7B")
        lines.append(f"stage 1: {self.distill_steps} steps, batch {self.distill_batch}, lr "
                     f"{self.distill_lr}, at most {self.distill_max_length} tokens; one grid "
                     "point (the paper: a 20-point grid)")
        lines.append(f"stage 2: {self.finetune_steps} steps, batch 1, lr {self.finetune_lr}, "
                     f"input limit {self.finetune_max_length} tokens (the conversation's oldest "
                     "text is cut first), objective "
                     + ("listwise (softmax over the candidates' ID log-likelihoods)"
                        if self.objective == "listwise" else "next-token on the ID (paper)")
                     + f"; one combined model over the 3 domains per variant; epoch chosen "
                     f"by {self.validation} HR@1 on the first {self.valid_conversations} "
                     "valid conversations per domain")
        lines.append(f"test: the first {self.test_conversations} conversations per domain, "
                     f"decoding {self.decoding}"
                     + (" (the argmax of the candidates' ID + EOS log-likelihoods; no parser, "
                        "so ValidRatio is 1 by construction)" if self.decoding == "score"
                        else ""))
        return lines

    def estimate(self) -> dict[str, float]:
        """Seconds each stage should take, from :attr:`seconds`."""
        s = self.seconds
        tests = self.test_conversations * len(DOMAINS) * len(VARIANTS)
        validations = (self.finetune_steps // self.finetune_eval_steps
                       * self.valid_conversations * len(DOMAINS) * s["test_conversation"])
        return {"setup": s["fixed"], "distill": self.distill_steps * s["distill_step"],
                "baselines": 180.0,
                **{f"finetune {v}": self.finetune_steps * s["finetune_step"] + validations
                   + tests / len(VARIANTS) * s["test_conversation"] for v in VARIANTS}}


PRESETS: dict[str, Preset] = {
    "cpu": Preset(),
    # the paper's k and views; untimed here (no GPU was lent when it was written)
    "gpu": Preset(candidates=10, views=5, image_side=112, tower_layers=6,
                  valid_conversations=100, test_conversations=700, distill_steps=1500,
                  distill_eval_steps=500, distill_batch=16, finetune_steps=3000,
                  finetune_eval_steps=1000, finetune_max_length=1024, objective="listwise",
                  validation="score", decoding="score",
                  seconds={"distill_step": 0.1, "finetune_step": 0.1,
                           "test_conversation": 0.05, "fixed": 120.0},
                  measured_on="estimate"),
}


def smoke_preset(preset: Preset) -> Preset:
    """``preset`` shrunk to a plumbing check: the small world, a few steps, a few test
    conversations."""
    return replace(preset, world="small", valid_conversations=4, test_conversations=4,
                   distill_steps=2, distill_eval_steps=1, distill_batch=2, finetune_steps=2,
                   finetune_eval_steps=1, probe_items=3, smoke=True,
                   seconds={**preset.seconds, "fixed": 60.0})

