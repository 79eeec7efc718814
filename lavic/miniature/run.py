"""The miniature's one command: every stage through the recipe's own ``bench`` commands, run
in-process, each skipped when its output is there (:func:`run_miniature`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from unittest.mock import patch

from bench.core.errors import BenchError
from lavic.miniature.curves import attribute_probe, curves, write_curve
from lavic.miniature.model import build_model
from lavic.miniature.preset import DOMAINS, GENERATORS, PRESETS, Preset, PresetName, smoke_preset
from lavic.miniature.report import write_report
from lavic.miniature.world import cut_world


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
    chosen = PRESETS[preset]
    chosen = smoke_preset(chosen) if smoke else chosen
    out.mkdir(parents=True, exist_ok=True)
    with _for_this_run(out / "cache", threads):
        return _stages(out, preset, chosen, device, echo)


@contextmanager
def _for_this_run(cache: Path, threads: int | None) -> Iterator[None]:
    """The run's own cache folder and torch threads, for the run only: a library call leaves
    the caller's process (its cache, its thread count) as it found it."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with patch.dict(os.environ, {"BENCH_CACHE_DIR": str(cache)}):
            yield
    finally:
        torch.set_num_threads(before)


def _stages(out: Path, preset: PresetName, chosen: Preset, device: str,
            echo: Callable[[str], None]) -> str:
    """Every stage in order, each skipped when its output is there."""
    from bench.task.data.synthetic import MANIFEST_FILE, synthesize

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

    table = bench_cli("table", runs, "--ci")
    compared = bench_cli("compare", *[runs / g for g in GENERATORS.values()])
    report = write_report(out, chosen, table, compared)
    progress.stage("done")
    echo(report)
    return report
