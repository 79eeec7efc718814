"""``bench lavic plan``: what each stage costs, before a GPU hour is paid.

Counts come from the readers the stages use (:func:`lavic.stage1.data.images_to_describe` for
stage 1, :func:`lavic.stage2.examples.load_examples` for stage 2, the test split's shipped lists
for ``bench run``); token lengths from the real tokenizer and prompt builders (the distill
collator's Table 10 prompt, :class:`lavic.stage2.prompt.RecPrompt`) on up to ``sample`` evenly
spaced examples per stage; parameter counts from the model on the meta device. FLOPs, memory
and hours follow the formulas of :mod:`lavic.cost`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from transformers import LlavaNextConfig
from transformers.image_processing_utils import select_best_resolution

from baselines.generators.chat import ChatTurn
from baselines.generators.hf import load_image
from bench.core.errors import BenchError, Warnings
from bench.task.data.release import ReleaseDataset
from lavic.cost import ACT_BYTES, BANDWIDTH_SHARE, GPUS, OPTIMIZER_BYTES, Cost, Sizes
from lavic.model.fulltokens import AnyResTokens, ViewTokens, entire_tokens
from lavic.model.views import ViewMaker
from lavic.stage1.data import Described, Source, images_to_describe
from lavic.stage1.describe import MAX_NEW_TOKENS
from lavic.stage1.distill import Collator, DistillConfig
from lavic.stage1.prompt import describe_prompt
from lavic.stage2.config import GENERATED, FinetuneConfig, slots
from lavic.stage2.examples import as_tested, load_examples, shipped_lists
from lavic.stage2.prompt import RecPrompt
from lavic.training import IGNORE


class PlanConfig(BaseModel):
    """What ``bench lavic plan`` assumes besides the stages' own settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    gpu: Literal["h100", "h200", "a100", "a100-40gb", "l40s"] = Field("h100", description=(
        "The GPU the hours are estimated for: h100, h200, a100, a100-40gb (the paper's) or "
        "l40s (lavic/cost.py lists their peaks)."))
    mfu: float = Field(0.4, gt=0, le=1, description=(
        "Share of the GPU's bf16 peak a step sustains, 0 < mfu <= 1."))
    dtype: Literal["bf16", "fp16", "fp32"] = Field("bf16", description=(
        "The weights' dtype every stage runs in: bf16, fp16 or fp32."))
    descriptions: Source = Field("model", description=(
        "model: describe every image first (its hours are counted); release: stage 1 reads "
        "the release's descriptions, no describe stage."))
    describe_batch_size: int = Field(4, gt=0, description=(
        "Images per generate call of the describe stage."))
    sample: int = Field(200, gt=0, description=(
        "Examples per stage whose prompt tokens are counted with the real tokenizer."))
    format: Literal["table", "json"] = Field("table", description=(
        "table (for reading) or json (every number, for scripts)."))


def evenly(items: Sequence[Any], n: int) -> list[Any]:
    """At most ``n`` items spread over the whole sequence, first included."""
    m = min(n, len(items))
    return [items[i * len(items) // m] for i in range(m)]


@dataclass
class Stage:
    """One stage's counts and estimates; ``steps``, ``flops`` and ``seconds`` per point."""

    name: str
    images: int
    train: int
    valid: int = 0
    tokens: list[int] = field(default_factory=list)  # each sampled example's length
    steps_per_epoch: int = 0  # optimizer steps, or generate calls
    steps: int = 0
    points: int = 1
    epochs: float = 1.0
    flops: float = 0.0
    seconds: float = 0.0
    memory: dict[str, float] = field(default_factory=dict)  # bytes by part
    disk: float = 0.0  # bytes of cached image rows
    refused: int = 0  # sampled prompts over the input limit
    needs: int = 0  # tokens the longest of them needs

    def as_dict(self) -> dict[str, Any]:
        tokens = self.tokens or [0]
        return {"stage": self.name, "images": self.images,
                "examples": {"train": self.train, "valid": self.valid},
                "tokens": {"mean": sum(tokens) / len(tokens), "max": max(tokens),
                           "sampled": len(self.tokens)},
                "steps_per_epoch": self.steps_per_epoch, "steps_per_point": self.steps,
                "grid_points": self.points, "steps": self.steps * self.points,
                "flops": self.flops * self.points,
                "memory_gb": {**{k: v / 1e9 for k, v in self.memory.items()},
                              "total": sum(self.memory.values()) / 1e9},
                "cache_gb": self.disk / 1e9,
                "hours_per_epoch": self.seconds / self.epochs / 3600,
                "hours": self.seconds * self.points / 3600,
                "over_budget": {"sampled": self.refused, "needs": self.needs}}


def _header(path: Path | None) -> Image.Image:
    """The image's size from its header (no pixels decoded), or the white square the caches
    show for a missing or unreadable image."""
    try:
        with Image.open(path or "") as image:
            return image
    except OSError:
        return load_image(None)[0]


def _count(full: Any, path: Path | None) -> int:
    """Image tokens of one file (from its size, where the size matters)."""
    return full.count() if isinstance(full, ViewTokens) else int(full.count(_header(path)))


def _anyres_views(config: LlavaNextConfig, path: Path | None) -> int:
    """Views LLaVA's any-resolution processor makes of an image: the base and the tiles."""
    image = _header(path)
    height, width = select_best_resolution((image.height, image.width),
                                           config.image_grid_pinpoints)
    side = config.vision_config.image_size
    return 1 + (height // side) * (width // side)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / max(len(values), 1)


class Planner:
    """Every stage's counts and estimates for one model, tokenizer, setting and GPU."""

    def __init__(self, config: LlavaNextConfig, tokenizer: Any, settings: PlanConfig,
                 distill: DistillConfig, finetune: FinetuneConfig) -> None:
        self.config, self.tokenizer, self.settings = config, tokenizer, settings
        self.stage1, self.stage2 = distill, finetune
        self.sizes = Sizes.of(config, distill.lora.r, finetune.lora.r)
        self.cost = Cost(self.sizes, GPUS[settings.gpu], settings.dtype, settings.mfu)
        self.placeholder = tokenizer.convert_ids_to_tokens(config.image_token_index)

    def training(self, stage: Stage, config: DistillConfig, points: int) -> tuple[float, int]:
        """Steps of one point, ceil(examples / (batch x accumulation)) an epoch; returns
        (examples trained on x the training-to-forward factor, evaluations)."""
        stage.points = points
        stage.steps_per_epoch = math.ceil(stage.train / (config.batch_size * config.grad_accum))
        stage.steps = config.max_steps if config.max_steps > 0 else \
            math.ceil(config.epochs * stage.steps_per_epoch)
        stage.epochs = stage.steps / stage.steps_per_epoch
        seen = stage.epochs * stage.train if config.max_steps < 0 else \
            stage.steps * config.batch_size * config.grad_accum
        evaluations = math.ceil(stage.steps / (config.eval_steps or stage.steps_per_epoch))
        return seen * (3 if config.gradient_checkpointing else 2), evaluations

    def describe(self, found: Sequence[Any]) -> Stage:
        """Greedy descriptions of every image, each shown as LLaVA's own image tokens."""
        full = AnyResTokens(self.config, self.tokenizer, self.placeholder)
        batch = self.settings.describe_batch_size
        train = sum(t.split == "train" for t in found)
        stage = Stage("describe", len(found), train, len(found) - train)
        flops = []
        turn = ChatTurn(self.tokenizer)
        for image in evenly(found, self.settings.sample):
            prompt = len(turn.encode(describe_prompt(image.title, self.placeholder))) - 1 \
                + _count(full, image.image)
            stage.tokens.append(prompt + MAX_NEW_TOKENS)
            flops.append(self.cost.llm(prompt)
                         + self.cost.views(_anyres_views(self.config, image.image)))
        longest = max(stage.tokens or [MAX_NEW_TOKENS])
        decoded, seconds = self.cost.decode(len(found), batch, longest - MAX_NEW_TOKENS,
                                            MAX_NEW_TOKENS)
        prefill = len(found) * _mean(flops)
        stage.steps_per_epoch = stage.steps = math.ceil(len(found) / batch)
        stage.flops, stage.seconds = prefill + decoded, self.cost.seconds(prefill) + seconds
        stage.memory = {**self.cost.weights(), "kv_cache": self.cost.kv_cache(batch * longest),
                        "activations": self.cost.transient(batch * longest)}
        return stage

    def distill(self, found: Sequence[Any], points: int) -> Stage:
        """Stage 1: the Table 10 prompt with ``views`` slots, the description the answer (the
        release's where the image has one, else describe's cap of 128 tokens)."""
        config, s = self.stage1, self.sizes
        collator = Collator(self.tokenizer, ViewMaker(self.config, config.views),
                            self.config.image_token_index, config.max_length)
        train = [t for t in found if t.split == "train"]
        stage = Stage("distill", len(found), len(train), len(found) - len(train))
        trained, evaluations = self.training(stage, config, points)
        answers = []
        for image in evenly(train, self.settings.sample):
            ids, labels = collator.encode(Described(title=image.title, image=image.image,
                                                    description=image.release))
            answer = sum(label != IGNORE for label in labels)
            prompt = len(ids) - answer
            if not image.release:
                answer = min(MAX_NEW_TOKENS + 1, config.max_length - prompt)
            stage.tokens.append(prompt + answer)
            answers.append(answer)
        mean = self.cost.views(config.views) + _mean(
            [self.cost.llm(t, a) for t, a in zip(stage.tokens, answers, strict=True)])
        stage.flops = (trained + evaluations * stage.valid) * mean
        stage.seconds = self.cost.seconds(stage.flops)
        batch, ckpt = config.batch_size, config.gradient_checkpointing
        logits = 2 * 4 * batch * max(answers or [0]) * int(self.config.text_config.vocab_size)
        stage.memory = {
            **self.cost.weights(), "lora": s.stage1 * OPTIMIZER_BYTES,
            "activations": logits + self.cost.activations(batch * max(stage.tokens or [0]), ckpt)
            + self.cost.activations(batch * config.views * s.view_tokens, ckpt, vision=True)}
        return stage

    def prompts(self, stage: Stage, examples: Sequence[Any], new: int | None,
                decoding: str = "generate") -> list[tuple[int, int]]:
        """(prompt, answer) lengths of the sampled ``examples``, each prompt leaving the answer
        room of ``decoding`` (:mod:`lavic.stage2.rows`); the answer is the ID and EOS or
        ``new`` new tokens. A prompt over the input limit is counted and measured at the
        length it needs."""
        config, turn = self.stage2, ChatTurn(self.tokenizer)
        coder, unlimited = (RecPrompt(turn, self.placeholder, slots(config), limit)
                            for limit in (config.max_length, 10 ** 9))
        full = entire_tokens(config.entire_tokens, self.config, views=config.views,
                             layer=config.vision_layer, tokenizer=self.tokenizer) \
            if config.variant == "entire-tokens" else None
        lengths = []
        for ex in evenly(examples, self.settings.sample):
            answer = len(turn.answer(ex.target)) if new is None else new
            room = turn.room(decoding, GENERATED, ex.asins)
            counts = [_count(full, i.image_path) for i in ex.candidates] if full else None
            text = ex.conversation.context
            try:
                ids = coder.encode(text, ex.candidates, room, counts)[0]
            except BenchError:
                ids = unlimited.encode(text, ex.candidates, room, counts)[0]
                stage.refused += 1
                stage.needs = max(stage.needs, len(ids) + answer)
            stage.tokens.append(len(ids) + answer)
            lengths.append((len(ids), answer))
        return lengths

    def image_rows(self, paths: set[Path | None]) -> tuple[float, float]:
        """(FLOPs, bytes) of the cache rows of ``paths``: every view through the vision
        tower, the row's vectors through the projector."""
        config, s = self.stage2, self.sizes
        if config.variant == "no-images":
            return 0.0, 0.0
        views = float(config.views)
        vectors = views * (s.view_tokens if config.variant == "entire-tokens" else 1)
        if config.variant == "entire-tokens" and config.entire_tokens == "anyres":
            full = AnyResTokens(self.config, self.tokenizer, self.placeholder)
            known = evenly(sorted(paths, key=str), self.settings.sample)
            views = _mean([_anyres_views(self.config, p) for p in known])
            vectors = _mean([_count(full, p) for p in known])
        return (len(paths) * (self.cost.views(views) + 2 * s.projector * vectors),
                len(paths) * vectors * s.hidden * self.cost.dbytes)

    def finetune(self, train: Sequence[Any], valid: Sequence[Any], points: int) -> Stage:
        """Stage 2: the Table 11 prompt, the ID and EOS the answer; every evaluation asks the
        valid split; the image rows are computed once for the whole grid."""
        config, s = self.stage2, self.sizes
        paths = {i.image_path for sample in (*train, *valid) for i in sample.candidates}
        stage = Stage("finetune", len(paths), len(train), len(valid))
        trained, evaluations = self.training(stage, config, points)
        mean = _mean([self.cost.llm(p + a, a) for p, a in self.prompts(stage, train, None)])
        new = GENERATED if config.validation == "generate" else 0
        asked = self.prompts(Stage("valid", 0, 0), valid, new, config.validation)
        prefill = _mean([self.cost.llm(p) for p, _ in asked]) * len(valid)
        decoded, waited = self.cost.decode(len(valid), 1, max(asked or [(0, 0)])[0], new)
        fill, stage.disk = self.image_rows(paths)
        computed = trained * mean + evaluations * prefill + fill / points
        stage.flops = computed + evaluations * decoded
        stage.seconds = self.cost.seconds(computed) + evaluations * waited
        stage.memory = {**self.cost.weights(), "lora": s.stage2 * OPTIMIZER_BYTES,
                        "activations": self.cost.activations(
                            config.batch_size * max(stage.tokens or [0]),
                            config.gradient_checkpointing)}
        return stage

    def run(self, tested: Sequence[Any], seen: set[Path | None]) -> Stage:
        """``bench run``: a greedy answer per test conversation, batch 1 (the generator's
        default with images); images the stage-2 rows do not cover are embedded first."""
        paths = {i.image_path for sample in tested for i in sample.candidates}
        stage = Stage("bench run", len(paths), len(tested))
        asked = self.prompts(stage, tested, GENERATED)
        computed = _mean([self.cost.llm(p) for p, _ in asked]) * len(tested) + \
            self.image_rows(paths - seen)[0]
        decoded, waited = self.cost.decode(len(tested), 1, max(asked or [(0, 0)])[0], GENERATED)
        stage.steps_per_epoch = stage.steps = len(tested)
        stage.flops, stage.seconds = computed + decoded, self.cost.seconds(computed) + waited
        stage.memory = {**self.cost.weights(),
                        "kv_cache": self.cost.kv_cache(max(stage.tokens or [0]))}
        return stage


def model_parts(source: str) -> tuple[LlavaNextConfig, Any]:
    """(configuration, tokenizer) of ``source``; no weights are read."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        return AutoConfig.from_pretrained(source), AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot load the model's configuration: {first}", where=source,
                         hint="pass --model-path DIR (`bench lavic tiny --out DIR`)") from None


def make_plan(data_dir: Path, domains: Sequence[str], *, config: LlavaNextConfig,
              tokenizer: Any, settings: PlanConfig, distill: Sequence[DistillConfig],
              finetune: Sequence[FinetuneConfig], images_dir: Path | None = None,
              valid_images_dir: Path | None = None, candidate_lists: str = "st",
              warnings: Warnings) -> dict[str, Any]:
    """Every stage's counts and estimates (grid points: ``distill`` and ``finetune``), with
    the assumptions they rest on."""
    planner = Planner(config, tokenizer, settings, distill[0], finetune[0])
    found = images_to_describe(data_dir, source=settings.descriptions, images_dir=images_dir,
                               valid_images_dir=valid_images_dir,
                               images_per_item=distill[0].images_per_item, warnings=warnings)
    first = finetune[0]
    train, valid = load_examples(data_dir, domains, shipped=candidate_lists,
                                 k=first.candidates, seed=first.seed,
                                 validation=first.validation, warnings=warnings)
    data, tested = ReleaseDataset(data_dir), []
    for domain in domains:  # what `bench run --retriever dataset:{lists}` asks
        split = data.load(domain, "test", warnings=warnings)
        tested += as_tested(split, shipped_lists(split, candidate_lists,
                                                 data.split_path(domain, "test")),
                            k=first.candidates)
    seen = {i.image_path for sample in (*train, *valid) for i in sample.candidates}
    stages = [planner.describe(found)] if settings.descriptions == "model" else []
    stages += [planner.distill(found, len(distill)),
               planner.finetune(train, valid, len(finetune)), planner.run(tested, seen)]
    gpu, sizes = planner.cost.gpu, planner.sizes
    return {"gpu": {"name": settings.gpu, "label": gpu.label, "bf16_tflops": gpu.tflops,
                    "bandwidth_tb_s": gpu.bandwidth, "memory_gb": gpu.memory},
            "assumptions": {"mfu": settings.mfu, "bandwidth_share": BANDWIDTH_SHARE,
                            "dtype": settings.dtype, "activation_bytes": ACT_BYTES,
                            "sample": settings.sample},
            "parameters": {"total": sizes.total, "llm": sizes.llm, "vision": sizes.vision,
                           "stage1_lora": sizes.stage1, "stage2_lora": sizes.stage2},
            "variant": first.variant, "stages": [stage.as_dict() for stage in stages]}


def _num(value: float) -> str:
    """Thousands separated when large, three significant digits when small."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def render(plan: dict[str, Any]) -> str:
    """The plan as a table (tabulate, as the harness prints estimates) and its notes."""
    from tabulate import tabulate

    gpu, assumed = plan["gpu"], plan["assumptions"]
    rows, notes = [], []
    for st in plan["stages"]:
        memory, examples, budget = st["memory_gb"]["total"], st["examples"], st["over_budget"]
        rows.append([st["stage"], f"{st['images']:,}", f"{examples['train']:,}"
                     + (f" + {examples['valid']:,}" if examples["valid"] else ""),
                     f"{st['tokens']['mean']:,.0f} / {st['tokens']['max']:,}",
                     f"{st['steps_per_epoch']:,}", str(st["grid_points"]), f"{st['steps']:,}",
                     _num(st["flops"] / 1e15),
                     _num(memory) + (" o.o.m." if memory > gpu["memory_gb"] else ""),
                     _num(st["hours_per_epoch"]), _num(st["hours"])])
        if budget["sampled"]:
            notes.append(f"{st['stage']}: {budget['sampled']} of {st['tokens']['sampled']} "
                         f"sampled prompts exceed the input limit; counted at the length they "
                         f"need (up to {budget['needs']:,} tokens)")
        if st["cache_gb"]:
            notes.append(f"{st['stage']}: cached image rows {_num(st['cache_gb'])} GB on disk")
    table = tabulate(rows, ["stage", "images", "examples", "tokens mean / max", "steps / epoch",
                            "grid", "steps", "PFLOP", "peak GB", f"{gpu['name']} h / epoch",
                            "h total"], tablefmt="pipe", disable_numparse=True,
                     colalign=["left"] + ["right"] * 10)
    notes.append(f"assumed: {gpu['label']}, {gpu['bf16_tflops']:g} TFLOP/s bf16 peak x "
                 f"{assumed['mfu']:g}, {gpu['bandwidth_tb_s']:g} TB/s x "
                 f"{assumed['bandwidth_share']:g} while generating, {assumed['dtype']} weights "
                 "(formulas: lavic/cost.py)")
    return f"{table}\n\n" + "\n".join(notes) + "\n"
