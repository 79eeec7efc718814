"""``bench``: run grids, list entries, render tables, gate CI, make and check data.

Every user error ends as one ``error: where: what (hint)`` line on stderr and exit code 2;
finished conversations are already on disk when that happens.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.cli_errors import user_errors
from bench.core import registry
from bench.core.errors import BenchError

app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__)
data_app = typer.Typer(add_completion=False, help="Make and check datasets.")
app.add_typer(data_app, name="data")

def mount_plugins(root: typer.Typer) -> None:
    """Mount each ``lavic_bench.cli`` typer app as ``bench <name> ...`` (e.g. ``bench lavic``)
    without importing the method here; a broken plug-in leaves a command that prints its one
    error line, so every other command keeps working."""
    taken = {c.name or c.callback.__name__.replace("_", "-")
             for c in root.registered_commands if c.callback is not None}
    taken |= {g.name for g in root.registered_groups}
    for name, sub in registry.cli_apps():
        if name in taken:
            typer.echo(f"warning: plug-in command {name!r} clashes with `bench {name}`; "
                       "ignored", err=True)
            continue
        if isinstance(sub, typer.Typer):
            root.add_typer(sub, name=name)
            continue
        error = sub if isinstance(sub, BenchError) else BenchError(
            f"plug-in command {name!r} is a {type(sub).__name__}, not a typer.Typer",
            where=registry.CLI_GROUP, hint="fix, upgrade or uninstall that plug-in")
        root.command(name, context_settings={"allow_extra_args": True,
                                             "ignore_unknown_options": True},
                     help=f"(broken plug-in) {error.what}")(_failing(error))


def _failing(error: BenchError) -> Callable[[], None]:
    def command() -> None:
        typer.echo(error.one_line(), err=True)
        raise typer.Exit(2)

    return command


def _includes(paths: list[Path] | None) -> None:
    registry.load_plugins()
    for path in paths or []:
        registry.include(path)


Include = Annotated[
    list[Path] | None,
    typer.Option("--include", help="Python file that registers retrievers/generators."),
]


@app.command()
@user_errors
def run(
    config: Annotated[Path | None, typer.Option(help="bench.toml to use.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Registered dataset name.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory (release layout).")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Domain(s); default: all.")] = None,
    split: Annotated[str | None, typer.Option(help="train / valid / test.")] = None,
    retriever: Annotated[list[str] | None, typer.Option(help="Retriever name(s).")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Generator name(s); none = "
                                                   "retriever alone.")] = None,
    out: Annotated[str | None, typer.Option(help="Output directory.")] = None,
    limit: Annotated[int | None, typer.Option(help="First N conversations only.")] = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (candidate order).")] = None,
    top_k: Annotated[int | None, typer.Option(help="Candidates per conversation.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Conversations per batch.")] = None,
    keep_order: Annotated[bool | None, typer.Option(help="Show candidates in retriever "
                                                    "order instead of shuffled.")] = None,
    strict: Annotated[bool | None, typer.Option(help="Data problems are errors.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Discard cells made by another "
                                            "config.")] = False,
    model_path: Annotated[Path | None, typer.Option(help="Local weights folder for the "
                                                    "model(s).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Fine-tuned checkpoint folder for "
                                                    "the model(s) (bench lavic finetune).")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server for the "
                                                 "model(s).")] = None,
    model_name: Annotated[str | None, typer.Option(help="The model id the OpenAI-compatible "
                                                   "server serves (sets the generators' "
                                                   "option model).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Estimate tokens and cost; call no "
                                          "generator.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Stop cleanly once this many US$ "
                                                   "are spent.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown / latex / csv.")] = "markdown",
    progress: Annotated[bool, typer.Option(help="Progress bars.")] = True,
    resamples: Annotated[int | None, typer.Option(help="Bootstrap resamples behind the 95% "
                                                  "intervals in results.json [default: "
                                                  "1000].")] = None,
    permutations: Annotated[int, typer.Option(help="Show each conversation's candidates in "
                                              "N seeded orders; report position pick "
                                              "rates.")] = 1,
    include: Include = None,
) -> None:
    """Run retrievers x models x domains; with no options, the default grid of bench.toml."""
    from bench.core import config as cfg
    from bench.execution import permutations as orders
    from bench.execution.runner import Grid
    from bench.results import positions
    from bench.results.tables import render
    from bench.task.stats import RESAMPLES

    if resamples is not None and resamples < 1:
        raise BenchError(f"--resamples {resamples}", hint="pass 1 or more (default 1000)")
    if not progress:
        os.environ["TQDM_DISABLE"] = "1"  # also silences bars inside retrievers and models
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' own (weight loading)
    _includes(include)
    spec = cfg.load(config)
    spec = cfg.override(
        spec, dataset=dataset, split=split, out=out, limit=limit, seed=seed, top_k=top_k,
        batch_size=batch_size, keep_order=keep_order, strict=strict,
        domains=tuple(domain or ()), retrievers=tuple(retriever or ()), models=tuple(model or ()),
        data_dir=data_dir,
    )
    generator_settings = {"model_path": str(model_path) if model_path else None,
                          "checkpoint": str(checkpoint) if checkpoint else None,
                          "base_url": base_url, "model": model_name}
    spec = cfg.with_generator_options(spec, generator_settings)
    orders.check(permutations, spec)
    grid = Grid(spec, progress=progress, overwrite=overwrite, echo=_stderr, dry_run=dry_run,
                max_cost=max_cost, resamples=resamples or RESAMPLES)
    payloads = grid.run()
    if dry_run:
        typer.echo(_estimate_table(grid.estimates))
        return
    if not payloads:  # a non-zero data-parallel rank: rank 0 gathers and reports
        typer.echo(f"shard done; rank 0 writes the results under {spec.out}", err=True)
        return
    typer.echo(render(payloads, fmt), nl=False)
    if permutations > 1:
        orders.run_orders(grid, permutations)
        summaries = orders.write_summaries(Path(spec.out), permutations, payloads)
        typer.echo("\n" + positions.render(summaries), nl=False)
    typer.echo(f"results: {spec.out}", err=True)
    failed = [p for p in payloads if "all_failed" in (p.get("flags") or ())]
    if failed:
        first = failed[0]
        raise BenchError(
            f"every request failed in {len(failed)} cell(s), first {first['domain']} "
            f"{first['retriever']}/{first['model']}; its numbers mean nothing",
            where=spec.out,
            hint="check the server or credentials, then re-run: failed requests are retried",
        )


def _estimate_table(rows: list[dict[str, Any]]) -> str:
    """The dry run's estimate per cell (tabulate), then the total."""
    from tabulate import tabulate

    columns = {"domain": "domain", "retriever": "retriever", "model": "model",
               "conversations": "conversations", "prompt_tokens": "prompt tokens",
               "completion_tokens": "completion tokens", "cost_usd": "cost (US$)"}
    body = [[("-" if r.get(k) is None else f"{r[k]:.4f}" if k == "cost_usd" else r[k])
             for k in columns] for r in rows]
    total = sum(r.get("cost_usd") or 0.0 for r in rows)
    return (tabulate(body, list(columns.values()), tablefmt="pipe", disable_numparse=True,
                     colalign=["left"] * 3 + ["right"] * 4)
            + f"\n\nestimated total: US${total:.4f} (generators without an estimate show -)")


def _stderr(line: str) -> None:
    typer.echo(line, err=True)


@app.command("ls")
@user_errors
def list_entries(include: Include = None) -> None:
    """List registered datasets, retrievers and generators, one line each."""
    _includes(include)
    for reg in (registry.datasets, registry.retrievers, registry.generators):
        for entry in reg:
            typer.echo(f"{reg.kind:<10} {entry.name:<20} {entry.summary}"
                       + ("" if entry.origin == "builtin" else f"  [{entry.origin}]"))


@app.command()
@user_errors
def table(
    paths: Annotated[list[Path], typer.Argument(help="Run directories or results.json files.")],
    fmt: Annotated[str, typer.Option("--format", help="markdown / latex / csv.")] = "markdown",
    with_paper: Annotated[bool, typer.Option(help="Add the paper's reported numbers.")] = False,
    ci: Annotated[bool, typer.Option("--ci", help="Print 95% bootstrap intervals.")] = False,
    sig: Annotated[str | None, typer.Option(help="Dagger the cells that differ significantly "
                                            "from this row (RETRIEVER/MODEL).")] = None,
    level: Annotated[float, typer.Option(help="Confidence level of --sig.")] = 0.95,
) -> None:
    """Render results in the paper's layout."""
    from bench.execution.store import iter_results
    from bench.results.tables import render

    found = list(iter_results(paths))
    if not found:
        raise BenchError(f"no results.json under {', '.join(map(str, paths))}",
                         hint="run `bench run` first")
    marked: set[tuple[str, str, str]] = set()
    legend = ""
    if sig is not None:
        from bench.results.compare import significant

        marked, legend = significant(found, sig, level=level)
    typer.echo(render(found, fmt, with_paper=with_paper, ci=ci, significant=marked,
                      sig_legend=legend), nl=False)


@app.command()
@user_errors
def check(
    results: Annotated[list[Path], typer.Argument(help="Run directories or results.json.")],
    baseline: Annotated[Path, typer.Option(help="Baseline JSON file.")],
    tolerance: Annotated[float, typer.Option(help="HR@1 drop that fails even when not "
                                             "significant.")] = 0.0,
    level: Annotated[float, typer.Option(help="Confidence level of the paired test and the "
                                         "rise interval.")] = 0.95,
    write: Annotated[bool, typer.Option("--write", help="Write the baseline from these "
                                        "results instead of checking.")] = False,
) -> None:
    """Exit 1 when a cell's HR@1 drops significantly or by more than the tolerance, or rises
    beyond the baseline's interval."""
    from bench.results.check import check as run_check
    from bench.results.check import write_baseline

    if write:
        write_baseline(results, baseline)
        typer.echo(f"wrote {baseline}")
        return
    report = run_check(results, baseline, tolerance, level=level)
    typer.echo(report.render(), nl=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@user_errors
def compare(
    paths: Annotated[list[Path], typer.Argument(help="Run directories or results.json files.")],
    fmt: Annotated[str, typer.Option("--format", help="markdown / latex / csv / json.")
                   ] = "markdown",
    level: Annotated[float, typer.Option(help="Confidence level; significant = Holm p below "
                                         "1 - level.")] = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Paired tests between every two cells with the same conversations and candidates."""
    from bench.results.compare import FORMATS
    from bench.results.compare import compare as run_compare

    if fmt not in FORMATS:  # before reading every cell
        raise BenchError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    report = run_compare(paths, resamples=resamples, seed=seed, level=level)
    typer.echo(report.render(fmt), nl=False)
    if fmt in ("csv", "json", "latex"):  # the table stays machine-readable: refusals to stderr
        for line in report.refusal_lines():
            typer.echo(line, err=True)


@app.command()
@user_errors
def report(
    paths: Annotated[list[Path], typer.Argument(help="Run directories or results.json files.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML page: metrics with intervals, plots, failures, usage."""
    from bench.results.report import write

    typer.echo(f"wrote {write(paths, out)}")


@data_app.command("synth")
@user_errors
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write.")],
    seed: Annotated[int, typer.Option(help="World seed.")] = 0,
    size: Annotated[str, typer.Option(help="small / medium / large.")] = "medium",
) -> None:
    """Write the synthetic dataset in the release layout."""
    from bench.task.data.synthetic import synthesize

    root = synthesize(out, seed=seed, size=size)
    typer.echo(f"wrote synthetic dataset ({size}, seed {seed}) to {root}")


@data_app.command("validate")
@user_errors
def validate_cmd(
    data_dir: Annotated[Path, typer.Argument(help="Data directory (release layout).")],
    images_dir: Annotated[Path | None, typer.Option(help="Images folder.")] = None,
    decode_images: Annotated[bool, typer.Option(help="Open every image to find corrupt "
                                                "ones (slow).")] = False,
) -> None:
    """Counts per domain/split and every structural problem (exit 1 if any)."""
    from bench.task.data.validate import validate

    report = validate(data_dir, images_dir, decode_images=decode_images)
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


mount_plugins(app)


def main() -> None:  # pragma: no cover - console entry for `python -m bench`
    app(prog_name="bench")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
