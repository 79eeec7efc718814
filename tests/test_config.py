"""One schema mechanism for every bench.toml table and the CLI; a frozen, hashable RunSpec."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.core import config, options, registry
from bench.core.config import RunSpec
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import Options, takes
from bench.execution.runner import Grid

BASE = """
[run]
retrievers = ["bm25"]
models = ["lexical"]
[datasets.synthetic]
size = "small"
[generators.vicuna]
max_length = 512
[prices."gpt-4o"]
input_per_mtok = 2.5
output_per_mtok = 10
"""


def spec_of(text: str, **run: Any) -> RunSpec:
    spec = config.parse(tomllib.loads(text), "b.toml")
    return dataclasses.replace(spec, **run)


def first_error(spec: RunSpec) -> str:
    with pytest.raises(BenchError) as err:
        Grid(spec, progress=False, echo=lambda _: None).run()
    line = err.value.one_line()
    assert "\n" not in line
    return line


def test_run_spec_is_frozen_and_hashable() -> None:
    spec = spec_of(BASE)
    assert hash(spec) == hash(spec_of(BASE)) and spec == spec_of(BASE)
    assert {spec: "cell"}[spec_of(BASE)] == "cell"
    assert hash(dataclasses.replace(spec, top_k=5)) != hash(spec)
    changed = spec_of(BASE.replace("max_length = 512", "max_length = 513"))
    assert changed != spec and hash(changed) != hash(spec)
    with pytest.raises(TypeError):
        spec.generator_options["vicuna"]["max_length"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.top_k = 3  # type: ignore[misc]
    # tables given as plain dicts are frozen the same way
    direct = dataclasses.replace(spec, generator_options={"vicuna": {"max_length": 512}})
    assert direct == spec and hash(direct) == hash(spec)
    assert spec.table("generators", "vicuna") == {"max_length": 512}
    assert spec.as_dict()["prices"] == {"gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10}}


@pytest.mark.parametrize(
    ("table", "models", "message"),
    [
        ("[generators.vicuna]\nmax_lenght = 512", ("vicuna",),
         "b.toml [generators.vicuna]: unknown key 'max_lenght' (did you mean 'max_length'?"),
        ("[generators.vicuna]\ndevcie = 'cpu'", ("vicuna",),
         "unknown key 'devcie' (did you mean 'device'?"),
        ("[generators.\"llava-1.6\"]\nmax_new_tokens = '10'", ("llava-1.6",),
         "b.toml [generators.llava-1.6]: max_new_tokens = '10': input should be a valid integer"),
        ("[generators.vicuna]\nid_parser = 'loose'", ("vicuna",),
         "id_parser = 'loose': input should be 'paper' or 'robust'"),
        ("[generators.\"llava-1.5+img\"]\nmax_lenght = 9", ("llava-1.5+img",),
         "b.toml [generators.llava-1.5+img]: unknown key 'max_lenght'"),
        ("[generators.lexical]\nseed = 1", ("lexical",),
         "b.toml [generators.lexical]: unknown key 'seed'"),
        ("[generators.gpt-4o]\ntemprature = 0", ("gpt-4o",),
         "unknown key 'temprature' (did you mean 'temperature'?"),
        ("[retrievers.bm25]\nkl = 1.2", ("none",),
         "b.toml [retrievers.bm25]: unknown key 'kl' (did you mean 'k1'?"),
        ("[retrievers.bm25]\nvariant = 'bm26'", ("none",), "variant = 'bm26'"),
        ("[datasets.synthetic]\nsise = 'small'", ("none",),
         "b.toml [datasets.synthetic]: unknown key 'sise' (did you mean 'size'?"),
        ("[datasets.synthetic]\nsize = 'huge'", ("none",), "size = 'huge'"),
        ("[generators.llava-1.6]\nimages = true", ("none",),
         "b.toml: [generators.llava-1] names no generator (did you mean 'llava-1."),
        ("[retrievers.bm52]\nk1 = 1.0", ("none",),
         "[retrievers.bm52] names no retriever (did you mean 'bm25'?"),
    ],
)
def test_unknown_keys_and_wrong_types_fail_before_any_work(
    table: str, models: tuple[str, ...], message: str
) -> None:
    assert message in first_error(spec_of(table, models=models))


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("limt = 3", "b.toml [run]: unknown key 'limt' (did you mean 'limit'?"),
        ("limit = 0", "b.toml [run]: limit = 0: input should be greater than 0"),
        ("top_k = -1", "top_k = -1: input should be greater than 0"),
        ("batch_size = 0", "batch_size = 0"),
        ("retrievers = []", "retrievers = []: list should have at least 1 item"),
        ("models = []", "models = []"),
        ("models = ['']", "models.0 = ''"),
        ("keep_order = 1", "keep_order = 1: input should be a valid boolean"),
    ],
)
def test_run_table_rules(run: str, message: str) -> None:
    with pytest.raises(BenchError) as err:
        config.parse(tomllib.loads(f"[run]\n{run}\n"), "b.toml")
    assert message in err.value.one_line()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limit": 0}, "command line: limit = 0: input should be greater than 0"),
        ({"top_k": 0}, "command line: top_k = 0"),
        ({"batch_size": -2}, "command line: batch_size = -2"),
        ({"retrievers": ("",)}, "command line: retrievers.0 = ''"),
    ],
)
def test_cli_values_obey_the_same_rules(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError) as err:
        config.override(spec_of(BASE), **change)
    assert message in err.value.one_line()
    assert config.override(spec_of(BASE), limit=3, top_k=5).limit == 3


def test_cli_limit_of_zero_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--limit", "0",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "error: command line: limit = 0: input should be greater than 0 "
        "(a positive number of conversations)")


def test_cli_model_settings_go_to_the_generators_that_take_them() -> None:
    registry.load_plugins()
    spec = spec_of(BASE, models=("lexical", "vicuna", "none"))
    given = config.with_generator_options(spec, {"model_path": "/m", "base_url": None})
    assert given.table("generators", "vicuna") == {"max_length": 512, "model_path": "/m"}
    assert given.table("generators", "lexical") == {}
    with pytest.raises(BenchError, match="no model of this run takes --base-url"):
        config.with_generator_options(spec, {"base_url": "http://localhost:1/v1"})
    # the "+img" names have their model's schema
    both = dataclasses.replace(spec, models=("llava-1.6+img", "gpt-4o+img"))
    given = config.with_generator_options(both, {"model_path": "/m", "base_url": "http://h/v1"})
    assert given.table("generators", "llava-1.6+img") == {"model_path": "/m"}
    assert given.table("generators", "gpt-4o+img") == {"base_url": "http://h/v1"}


def test_plugins_declare_schemas_the_same_way_or_keep_raw_options() -> None:
    class Mine(Options):
        depth: int = 2

    @takes(Mine)
    def declared(ctx: BuildContext) -> Mine:
        return ctx.parse(Mine, "[generators.mine]")

    def undeclared(ctx: BuildContext) -> dict[str, Any]:
        return dict(ctx.options)

    assert options.schema_of(declared) is Mine and options.schema_of(undeclared) is None
    options.check(undeclared, {"anything": 1}, "w")  # no schema: today's behaviour
    with pytest.raises(BenchError) as err:
        options.check(declared, {"detph": 3}, "w")
    assert "w: unknown key 'detph' (did you mean 'depth'?" in err.value.one_line()
    assert declared(BuildContext(options={"depth": 3})).depth == 3
    assert undeclared(BuildContext(options={"x": 1})) == {"x": 1}


def test_prices_are_checked() -> None:
    with pytest.raises(BenchError) as err:
        config.parse(tomllib.loads('[prices.m]\ninput_per_mtok = 1\n'), "b.toml")
    assert "b.toml [prices.m]: missing key 'output_per_mtok'" in err.value.one_line()
