"""Every `bench lavic` option says what it means (the schema fields' descriptions), and the
layers hold at run time: inference and the data readers never load the training loop."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
import typer
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from lavic.cli import app, schema_parameters


def options() -> list[tuple[str, Any]]:
    """(command, click option) for every option of every `bench lavic` command."""
    group: Any = typer.main.get_command(app)
    return [(name, param) for name, command in group.commands.items()
            for param in command.params
            if param.param_type_name == "option" and param.name != "help"]


def test_every_option_of_every_command_has_a_help_line_that_says_what_it_means() -> None:
    found = options()
    assert {name for name, _ in found} == {"tiny", "describe", "distill", "finetune", "plan",
                                           "miniature"}
    assert len(found) > 60  # every schema field of distill, finetune and plan (twice) is one
    for command, option in found:
        text = option.help or ""
        field = option.name or ""
        assert len(text.split()) >= 4, (command, field, text)
        assert "Config." not in text and text.split(" Default:")[0] != field, (command, text)


def test_finetune_help_names_the_values_and_the_papers_choice() -> None:
    helps = {option.opts[0]: option.help or "" for command, option in options()
             if command == "finetune"}
    assert "5 (plus a 2x2 grid, the paper's)" in helps["--views"]
    assert helps["--views"].endswith("Default: 5.")
    assert helps["--lora-r"] == "LoRA rank (the paper: 8). Default: 8."
    assert "(the paper, Section 5.1: 1)" in helps["--batch-size"]
    assert "no-images (titles only)" in helps["--variant"]
    assert "Default" not in helps["--eval-steps"]  # None: the description says what happens
    shown = CliRunner().invoke(app, ["finetune", "--help"], terminal_width=200)
    assert shown.exit_code == 0 and "Views per image" in shown.output


def test_a_field_without_a_description_is_refused() -> None:
    class Bare(BaseModel):
        said: int = Field(1, description="a field that says what it is")
        silent: int = 2

    @dataclass(frozen=True)
    class Nested:
        depth: Annotated[int, Field(gt=0, description="how deep it goes, in levels")] = 3

    class Outer(BaseModel):
        nested: Nested = Nested()

    with pytest.raises(TypeError, match=r"Bare\.silent has no description"):
        schema_parameters(Bare)
    [param] = schema_parameters(Outer)
    assert param.name == "nested_depth"
    assert param.annotation.__metadata__[0].help == "how deep it goes, in levels. Default: 3."


def loaded(*modules: str) -> set[str]:
    """Top modules a fresh interpreter has loaded after importing ``modules``."""
    code = (f"import sys; import {', '.join(modules)}; "
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    return set(done.stdout.split())


def test_inference_and_the_readers_never_load_the_training_loop() -> None:
    generator = loaded("lavic.generator")
    assert "lavic.generator" in generator and "transformers" in generator
    assert not {"transformers.trainer", "lavic.training", "lavic.stage2.finetune",
                "lavic.stage1.distill"} & generator
    readers = loaded("lavic.stage1.data", "lavic.stage2.examples")
    assert not {"torch", "transformers", "peft"} & readers
