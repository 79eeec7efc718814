"""``bench lavic``: the method's stages as commands, mounted through the ``lavic_bench.cli``
entry point (the harness never imports this package).

From a clean clone, on the synthetic world, with a tiny model of the real architecture::

    bench data synth --size small --out world
    bench lavic tiny --out tiny
    bench lavic describe --data-dir world --model-path tiny --out described
    bench lavic distill --descriptions described --model-path tiny --out stage1
    bench lavic finetune --data-dir world --domain all_beauty --model-path tiny \
        --stage1 stage1 --out stage2
    bench run --dataset reddit-amazon --data-dir world --domain all_beauty \
        --retriever dataset:st --model lavic --model-path tiny --checkpoint stage2

Every stage resumes: describe from its answer cache, distill and finetune from their last
checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bench.cli_errors import OneLineUsage, user_errors
from bench.core.env import cache_root
from bench.core.errors import BenchError, Warnings
from bench.core.weights import ModelPaths, weights_identity
from lavic.grid import GRID, grid_points, point_name, run_grid
from lavic.model.arch import REAL_MODEL_ID
from lavic.settings import Device, Dtype, TrainingConfig, placement
from lavic.stage1.distill import DistillConfig
from lavic.stage2.config import FinetuneConfig
from lavic.store.checkpoint import ADAPTER_DIR

app = typer.Typer(cls=OneLineUsage, add_completion=False, no_args_is_help=True,
                  help="LaViC: describe images, distil them to view embeddings (stage 1), "
                  "fine-tune for recommendation (stage 2).")

ModelPath = Annotated[Path | None, typer.Option(help="Local LLaVA-NeXT folder (wins over "
                                                "--model).")]
ModelName = Annotated[str, typer.Option("--model", help="Hub name, or a name mapped by "
                                        "$BENCH_MODELS / bench.toml \\[models].")]
Out = Annotated[Path, typer.Option(help="Output folder (re-run the same command to resume).")]
ImagesPerItem = Annotated[int | None, typer.Option(min=1, help="Only {ASIN}_0..N-1.jpg of "
                                                   "each item (default: every image, as the "
                                                   "authors' stage 1).")]


def model_source(model_path: Path | None, model: str) -> str:
    """A local folder when given (it must exist), else the resolved name."""
    if model_path is None:
        return ModelPaths().resolve(model)
    if not model_path.is_dir():
        raise BenchError("no such model folder", where=str(model_path),
                         hint="pass a save_pretrained folder (`bench lavic tiny --out DIR`)")
    return str(model_path)


def load_base(source: str, config: TrainingConfig) -> tuple[Any, Any]:
    """(tokenizer, LLaVA-NeXT model) of ``source``, the model loaded straight onto the
    config's device in its dtype (never a full-precision copy first); failures are one line."""
    from transformers import AutoTokenizer, LlavaNextForConditionalGeneration

    device, dtype = placement(config.device, config.dtype)
    try:
        return (AutoTokenizer.from_pretrained(source),
                LlavaNextForConditionalGeneration.from_pretrained(
                    source, dtype=dtype, device_map=str(device)))
    except (OSError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BenchError(f"cannot load the model: {first}", where=source,
                         hint="pass --model-path DIR (`bench lavic tiny --out DIR`)") from None


def echo_warnings(warnings: Warnings) -> None:
    for line in warnings.lines():
        typer.echo(line, err=True)


@app.command()
@user_errors
def tiny(out: Out, seed: Annotated[int, typer.Option(
        help="Seed of the tiny model's random weights.")] = 0) -> None:
    """Write a tiny LLaVA-NeXT (the real module tree, shrunken) with a character tokenizer."""
    from lavic.model.tiny import tiny_folder

    if out.exists() and any(out.iterdir()):
        raise BenchError("the folder is not empty", where=str(out), hint="pass a new folder")
    model = tiny_folder(out, seed=seed)
    count = sum(p.numel() for p in model.parameters())
    typer.echo(f"wrote a tiny LLaVA-NeXT ({count:,} parameters) to {out}")


@app.command()
@user_errors
def describe(
    data_dir: Annotated[Path, typer.Option(help="Data directory (release layout).")],
    out: Out,
    descriptions: Annotated[str, typer.Option(help="`model`: the full-token model writes them; "
                                              "`release`: the train file's own.")] = "model",
    model_path: ModelPath = None,
    model: ModelName = REAL_MODEL_ID,
    images_dir: Annotated[Path | None, typer.Option(help="Training images folder (default "
                                                    "DATA_DIR/train_images).")] = None,
    valid_images_dir: Annotated[Path | None, typer.Option(
        help="Validation images folder (default DATA_DIR/valid_images).")] = None,
    images_per_item: ImagesPerItem = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per generate call.")] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="First N training and N validation "
                                              "images only (smoke runs).")] = None,
    device: Annotated[Device, typer.Option(help="auto: cuda when there is one.")] = "auto",
    dtype: Annotated[Dtype, typer.Option(help="auto: bf16 on cuda, fp32 on the CPU.")] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Processes that read images and run the "
                                         "processor (0: the main one).")] = 0,
) -> None:
    """Describe every training and validation image (Table 10 prompt, greedy, <= 128 tokens)."""
    from lavic.stage1.data import images_to_describe, write_descriptions

    if descriptions not in ("model", "release"):
        raise BenchError(f"--descriptions {descriptions!r}", where="bench lavic describe",
                         hint="use model or release")
    warnings = Warnings()
    try:
        wanted = images_to_describe(data_dir, source=descriptions,  # type: ignore[arg-type]
                         images_dir=images_dir, valid_images_dir=valid_images_dir,
                         images_per_item=images_per_item, limit=limit, warnings=warnings)
    except BenchError:
        echo_warnings(warnings)  # what was skipped explains the error that follows
        raise
    if descriptions == "release":
        done, source = [(t, t.release) for t in wanted], "release"
    else:
        from lavic.stage1.describe import describe as run_describe

        def progress(done: int) -> None:
            typer.echo(f"described {done} new image(s)", err=True)

        done, source = run_describe(wanted, model_source(model_path, model), out,
                                    batch_size=batch_size, workers=workers, device=device,
                                    dtype=dtype, warnings=warnings, progress=progress)
    echo_warnings(warnings)
    path = write_descriptions(out, source, images_per_item, done)
    counts = {s: sum(t.split == s for t, _ in done) for s in ("train", "valid")}
    typer.echo(f"{counts['train']} training and {counts['valid']} validation descriptions "
               f"({source}) in {path}")


def schema_parameters(schema: Any, prefix: str = "", skip: tuple[str, ...] = ()
                      ) -> list[inspect.Parameter]:
    """One ``--option`` per field of a pydantic model or dataclass (nested ones flattened
    with their name as prefix), each defaulting to None = the schema's own default; the help
    line is the field's description (a field without one is a programming error)."""
    if is_dataclass(schema):
        hints, annotated = get_type_hints(schema), get_type_hints(schema, include_extras=True)
        items = [(f.name, hints[f.name], f.default, next(
            (m.description for m in getattr(annotated[f.name], "__metadata__", ())
             if isinstance(m, FieldInfo)), None)) for f in fields(schema)]
    else:
        items = [(n, f.annotation, f.default, f.description)
                 for n, f in schema.model_fields.items()]
    params: list[inspect.Parameter] = []
    for name, kind, default, description in items:
        if name in skip:
            continue
        if is_dataclass(kind) or (isinstance(kind, type) and issubclass(kind, BaseModel)):
            params += schema_parameters(kind, f"{prefix}{name}_")
            continue
        if not description:
            raise TypeError(f"{schema.__name__}.{name} has no description for its --help")
        text = description if description.endswith(".") else f"{description}."
        option = typer.Option(help=text if default is None else f"{text} Default: {default}.",
                              show_default=False)
        params.append(inspect.Parameter(f"{prefix}{name}", inspect.Parameter.KEYWORD_ONLY,
                                        default=None, annotation=Annotated[kind | None, option]))
    return params


def schema_values(values: dict[str, Any], schema: Any, prefix: str = "") -> dict[str, Any]:
    """The options the user set, nested back into the schema's shape."""
    raw: dict[str, Any] = {}
    names = ([f.name for f in fields(schema)] if is_dataclass(schema)
             else list(schema.model_fields))
    for name in names:
        key = f"{prefix}{name}"
        nested = getattr(schema, "model_fields", {}).get(name)
        kind = nested.annotation if nested is not None else None
        if is_dataclass(kind):
            sub = schema_values(values, kind, f"{key}_")
            if sub:
                raw[name] = sub
        elif values.get(key) is not None:
            raw[name] = values[key]
    return raw


def run_distill(descriptions: Path, out: Path, model_path: Path | None, model: str,
                lr: list[float] | None, wd: list[float] | None, **options: Any) -> None:
    """Stage 1 once, or once per grid point (:mod:`lavic.grid`), best by validation
    perplexity."""
    from lavic.stage1.data import read_descriptions
    from lavic.stage1.distill import distill

    configs = grid_points(DistillConfig, lr or [], wd or [],
                          schema_values(options, DistillConfig), "bench lavic distill")
    train, valid, header = read_descriptions(descriptions, configs[0].images_per_item)
    source = model_source(model_path, model)
    identity = weights_identity(source) or source

    def one(config: DistillConfig, folder: Path) -> dict[str, Any]:
        tokenizer, base = load_base(source, config)
        typer.echo(f"stage 1 {point_name(config)}: {len(train)} training, {len(valid)} "
                   f"validation images -> {folder}", err=True)
        return distill(base, tokenizer, train, valid, folder, config, base_identity=identity)

    result = run_grid(out, configs, one, metric="best_perplexity", greater=False,
                      spec={"stage": "distill-grid", "base": identity, "descriptions": header})
    typer.echo(f"best validation perplexity {result['best_perplexity']:.4g}; adapter in "
               f"{out / ADAPTER_DIR}")


def option(name: str, annotation: Any, default: Any = inspect.Parameter.empty
           ) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


def schema_command(run: Callable[..., None], fixed: list[inspect.Parameter], schema: Any,
                   doc: str, skip: tuple[str, ...] = ()) -> Any:
    """``run`` as a command: the ``fixed`` options plus one ``--option`` per schema field."""

    @user_errors
    def command(**values: Any) -> None:
        run(**values)

    params = fixed + schema_parameters(schema, skip=skip)
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    return command


app.command("distill")(schema_command(run_distill, [
    option("descriptions", Annotated[Path, typer.Option(
        help="A describe output folder or its descriptions.json.")]),
    option("out", Out),
    option("model_path", ModelPath, None),
    option("model", ModelName, REAL_MODEL_ID),
    option("lr", Annotated[list[float] | None, typer.Option(
        help="Learning rate; repeat for a grid (default 5e-5).")], None),
    option("wd", Annotated[list[float] | None, typer.Option(
        help="Weight decay; repeat for a grid (default 1e-5).")], None),
], DistillConfig, "Stage 1: LoRA on the vision tower and projector learns to let the frozen "
   "LLM rewrite each description from `views` [CLS] embeddings.", skip=GRID))


def run_finetune(data_dir: Path, domain: list[str], out: Path, model_path: Path | None,
                 model: str, stage1: Path | None, candidate_lists: str, limit: int | None,
                 lr: list[float] | None, wd: list[float] | None, **options: Any) -> None:
    """Stage 2 on the train split of ``domain`` (several: one combined model), once or once
    per grid point (:mod:`lavic.grid`), the epoch and the point chosen by HR@1 on the valid
    split; view embeddings cached in the harness's cache."""
    from lavic.stage2.examples import load_examples
    from lavic.stage2.finetune import finetune

    configs = grid_points(FinetuneConfig, lr or [], wd or [],
                          schema_values(options, FinetuneConfig), "bench lavic finetune")
    first = configs[0]
    warnings = Warnings()
    train, valid = load_examples(data_dir, domain, shipped=candidate_lists,
                                 k=first.candidates, seed=first.seed, limit=limit,
                                 validation=first.validation, warnings=warnings)
    echo_warnings(warnings)
    source = model_source(model_path, model)
    identity = weights_identity(source) or source

    def one(config: FinetuneConfig, folder: Path) -> dict[str, Any]:
        tokenizer, base = load_base(source, config)
        typer.echo(f"stage 2 ({config.variant}) {point_name(config)}: {len(train)} training, "
                   f"{len(valid)} validation examples -> {folder}", err=True)
        return finetune(base, tokenizer, train, valid, folder, config, stage1=stage1,
                        cache_dir=cache_root(), base_identity=identity)

    result = run_grid(out, configs, one, metric="best_hr@1", greater=True,
                      spec={"stage": "finetune-grid", "base": identity,
                            "domains": list(domain), "candidate_lists": candidate_lists})
    typer.echo(f"best validation HR@1 {result['best_hr@1']:.4g} ({first.validation}); "
               f"adapter in {out / ADAPTER_DIR}")


app.command("finetune")(schema_command(run_finetune, [
    option("data_dir", Annotated[Path, typer.Option(help="Data directory (release layout).")]),
    option("domain", Annotated[list[str], typer.Option(
        help="Domain to train on; repeat it for one combined model.")]),
    option("out", Out),
    option("model_path", ModelPath, None),
    option("model", ModelName, REAL_MODEL_ID),
    option("stage1", Annotated[Path | None, typer.Option(
        help="The `bench lavic distill` output folder (variant lavic).")], None),
    option("candidate_lists", Annotated[str, typer.Option(
        help="The release's candidate lists: st (SBERT, the paper's) or gpt_large.")], "st"),
    option("limit", Annotated[int | None, typer.Option(
        min=1, help="First N conversations of each split (smoke runs).")], None),
    option("lr", Annotated[list[float] | None, typer.Option(
        help="Learning rate; repeat for a grid (default 5e-5).")], None),
    option("wd", Annotated[list[float] | None, typer.Option(
        help="Weight decay; repeat for a grid (default 1e-5).")], None),
], FinetuneConfig, "Stage 2: LoRA on the LLM learns to answer the Table 11 prompt with the "
   "ground truth's ID, each candidate image as `views` cached embeddings.", skip=GRID))


def run_plan(data_dir: Path, domain: list[str], model_path: Path | None, model: str,
             images_dir: Path | None, valid_images_dir: Path | None, candidate_lists: str,
             distill_lr: list[float] | None, distill_wd: list[float] | None,
             finetune_lr: list[float] | None, finetune_wd: list[float] | None,
             **options: Any) -> None:
    """Every stage's counts and estimates (:mod:`lavic.plan`) for the options the stage
    commands would get, each stage's own under its prefix."""
    from bench.core.options import validate
    from lavic.plan import PlanConfig, make_plan, model_parts, render

    where = "bench lavic plan"
    settings = validate(PlanConfig, schema_values(options, PlanConfig), where)
    distill = grid_points(DistillConfig, distill_lr or [], distill_wd or [],
                          {**schema_values(options, DistillConfig, "distill_"),
                           "dtype": settings.dtype}, where)
    finetune = grid_points(FinetuneConfig, finetune_lr or [], finetune_wd or [],
                           {**schema_values(options, FinetuneConfig, "finetune_"),
                            "dtype": settings.dtype}, where)
    config, tokenizer = model_parts(model_source(model_path, model))
    warnings = Warnings()
    plan = make_plan(data_dir, domain, config=config, tokenizer=tokenizer, settings=settings,
                     distill=distill, finetune=finetune, images_dir=images_dir,
                     valid_images_dir=valid_images_dir, candidate_lists=candidate_lists,
                     warnings=warnings)
    echo_warnings(warnings)
    if settings.format == "json":
        import json

        typer.echo(json.dumps(plan, indent=2))
    else:
        typer.echo(render(plan), nl=False)


def _plan_command() -> Any:
    from lavic.plan import PlanConfig

    stage = (*GRID, "device", "workers", "dtype")  # the grid and dtype are the plan's own
    return schema_command(run_plan, [
        option("data_dir", Annotated[Path, typer.Option(help="Data directory (release "
                                                          "layout).")]),
        option("domain", Annotated[list[str], typer.Option(
            help="Domain of stage 2 and `bench run`; repeat it for one combined model.")]),
        option("model_path", ModelPath, None),
        option("model", ModelName, REAL_MODEL_ID),
        option("images_dir", Annotated[Path | None, typer.Option(
            help="Training images folder (default DATA_DIR/train_images).")], None),
        option("valid_images_dir", Annotated[Path | None, typer.Option(
            help="Validation images folder (default DATA_DIR/valid_images).")], None),
        option("candidate_lists", Annotated[str, typer.Option(
            help="The release's candidate lists: st (SBERT, the paper's) or gpt_large.")],
            "st"),
        *[option(f"{prefix}_{name}", Annotated[list[float] | None, typer.Option(
            help=f"Stage {n} {what}; repeat for a grid.")], None)
          for n, prefix in ((1, "distill"), (2, "finetune"))
          for name, what in (("lr", "learning rate"), ("wd", "weight decay"))],
        *schema_parameters(DistillConfig, "distill_", skip=stage),
        *schema_parameters(FinetuneConfig, "finetune_", skip=stage),
    ], PlanConfig, "Before a GPU hour is paid: per stage the images and examples, tokens per "
       "example, steps, FLOPs, peak memory and hours on a named GPU.")


app.command("plan")(_plan_command())


@app.command()
@user_errors
def miniature(
    out: Out,
    preset: Annotated[str, typer.Option(help="cpu (k=4, 1 view, listwise, ~105 min on one "
                                        "thread) or gpu (the paper's k=10, 5 views).")] = "cpu",
    smoke: Annotated[bool, typer.Option(help="A few minutes: the plumbing only, the numbers "
                                        "mean nothing.")] = False,
    device: Annotated[Device, typer.Option(help="auto: cuda when there is one.")] = "auto",
    threads: Annotated[int | None, typer.Option(
        min=1, help="Threads torch uses on the CPU (default: torch's own choice).")] = None,
) -> None:
    """Table 7 in miniature: SmolLM2-135M as the LLM, every stage on the synthetic world,
    `bench table` and `bench compare` of LaViC against its ablations (lavic/miniature/)."""
    from lavic.miniature import PRESETS, run_miniature

    if preset not in PRESETS:
        raise BenchError(f"--preset {preset!r}", where="bench lavic miniature",
                         hint=f"use {' or '.join(PRESETS)}")
    run_miniature(out, preset=preset, smoke=smoke, device=device,  # type: ignore[arg-type]
                  threads=threads, echo=typer.echo)
