"""FLOPs, memory and time of LLaVA-NeXT work on a named GPU: the arithmetic of ``bench lavic
plan`` (:mod:`lavic.plan`), stated so it can be checked. N: parameters a token passes, L
layers, w the attention width, s tokens of a sequence.

- forward: ``2 N s`` for the weights plus ``2 L s^2 w`` for causal attention (``4 L s^2 w`` for
  the vision tower, which attends both ways, over each view's patches and [CLS]);
- training with every base weight frozen (LoRA): forward + gradient of the inputs, twice the
  forward (``4 N s``), three times with gradient checkpointing (the forward runs again);
- time: FLOPs at ``mfu`` of the GPU's bf16 peak; a generated token costs one step of its
  batch, which reads the weights and the KV cache at ``BANDWIDTH_SHARE`` of the bandwidth (or
  its FLOPs, if slower);
- memory: the whole model in its dtype; LoRA weights with gradient and Adam states in float32
  (``OPTIMIZER_BYTES`` each); activations of ``ACT_BYTES`` per token, layer and hidden unit at
  2 bytes a value (Korthikanti et al. 2022; SDPA keeps no attention scores) or, with gradient
  checkpointing, each layer's input plus one layer's; the KV cache when generating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transformers import LlavaNextConfig

from lavic.model.arch import meta_model
from lavic.model.fulltokens import tokens_per_view
from lavic.model.lora import stage1_count, stage2_count

ACT_BYTES = 34
BANDWIDTH_SHARE = 0.6
OPTIMIZER_BYTES = 16
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class Gpu:
    label: str
    tflops: float  # dense bf16 peak
    bandwidth: float  # TB/s
    memory: float  # GB


GPUS = {"h100": Gpu("NVIDIA H100 SXM 80GB", 989, 3.35, 80),
        "h200": Gpu("NVIDIA H200 SXM 141GB", 989, 4.8, 141),
        "a100": Gpu("NVIDIA A100 SXM 80GB", 312, 2.04, 80),
        "a100-40gb": Gpu("NVIDIA A100 40GB (the paper's)", 312, 1.56, 40),
        "l40s": Gpu("NVIDIA L40S 48GB", 362, 0.864, 48)}


@dataclass(frozen=True)
class Sizes:
    """Parameter counts of the model on the meta device and the shapes the formulas use."""

    total: int
    llm: int  # decoder layers and final norm: every token passes them
    head: int  # output layer: only positions whose logits are computed
    vision: int
    projector: int
    layers: int
    hidden: int
    width: int  # attention heads x head size
    kv: int
    vision_layers: int
    vision_hidden: int
    view_tokens: int  # patches + [CLS] of one view
    stage1: int  # LoRA weights
    stage2: int

    @classmethod
    def of(cls, config: LlavaNextConfig, rank1: int, rank2: int) -> Sizes:
        parts = dict.fromkeys(("language_model.layers.", "language_model.norm.", "lm_head.",
                               "vision_tower.", "multi_modal_projector."), 0)
        total = 0
        for name, param in meta_model(config).named_parameters():
            total += param.numel()
            for part in parts:
                parts[part] += param.numel() * (part in name)
        llm, norm, head, vision, projector = parts.values()
        text, sight = config.text_config, config.vision_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        return cls(total, llm + norm, head, vision, projector, text.num_hidden_layers,
                   text.hidden_size, text.num_attention_heads * head_dim,
                   text.num_key_value_heads * head_dim, sight.num_hidden_layers,
                   sight.hidden_size, tokens_per_view(config), stage1_count(config, rank1),
                   stage2_count(config, rank2))


def forward(params: int, layers: int, width: int, tokens: float, *, causal: bool = True
            ) -> float:
    """FLOPs of one forward pass over ``tokens`` tokens."""
    return 2 * params * tokens + (2 if causal else 4) * layers * tokens ** 2 * width


def activations(tokens: int, layers: int, hidden: int, dbytes: int, checkpointing: bool
                ) -> float:
    """Bytes kept for the backward pass of ``tokens`` tokens."""
    one_layer = ACT_BYTES * dbytes / 2 * tokens * hidden
    return tokens * hidden * dbytes * layers + one_layer if checkpointing \
        else one_layer * layers


class Cost:
    """The formulas for one model, dtype, GPU and utilisation."""

    def __init__(self, sizes: Sizes, gpu: Gpu, dtype: str, mfu: float) -> None:
        self.sizes, self.gpu, self.dbytes, self.mfu = sizes, gpu, DTYPE_BYTES[dtype], mfu

    def llm(self, tokens: float, logits: int = 1) -> float:
        """A forward pass of the LLM, the output layer at ``logits`` positions."""
        s = self.sizes
        return forward(s.llm, s.layers, s.width, tokens) + 2 * s.head * logits

    def views(self, views: float) -> float:
        """The vision tower over ``views`` views."""
        s = self.sizes
        return views * forward(s.vision, s.vision_layers, s.vision_hidden, s.view_tokens,
                               causal=False)

    def seconds(self, flops: float) -> float:
        return flops / (self.gpu.tflops * 1e12 * self.mfu)

    def decode(self, sequences: int, batch: int, context: int, new: int
               ) -> tuple[float, float]:
        """(FLOPs, seconds) of ``new`` tokens for each of ``sequences`` after ``context``."""
        s, calls = self.sizes, math.ceil(sequences / batch)
        flops = batch * (2 * (s.llm + s.head) + 4 * s.layers * (context + new / 2) * s.width)
        read = (s.llm + s.head + batch * (context + new) * s.layers * 2 * s.kv) * self.dbytes
        step = max(read / (self.gpu.bandwidth * 1e12 * BANDWIDTH_SHARE), self.seconds(flops))
        return calls * new * flops, calls * new * step

    def weights(self) -> dict[str, float]:
        return {"weights": self.sizes.total * self.dbytes}

    def kv_cache(self, tokens: int) -> float:
        return tokens * self.sizes.layers * 2 * self.sizes.kv * self.dbytes

    def activations(self, tokens: int, checkpointing: bool, *, vision: bool = False) -> float:
        """Bytes the backward pass of ``tokens`` tokens keeps (``vision``: the tower's)."""
        s = self.sizes
        layers, hidden = (s.vision_layers, s.vision_hidden) if vision else (s.layers, s.hidden)
        return activations(tokens, layers, hidden, self.dbytes, checkpointing)

    def transient(self, tokens: int) -> float:
        """Bytes a forward pass without a backward holds at once: one layer's."""
        return activations(tokens, 1, self.sizes.hidden, self.dbytes, False)
