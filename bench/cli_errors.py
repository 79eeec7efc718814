"""How every command, the harness's and a plug-in's (``lavic_bench.cli``), reports mistakes:
one ``error: where: what (hint)`` line on stderr and exit code 2, never a traceback or a usage
box. Kept apart from :mod:`bench.cli` so a plug-in app can use it without importing the CLI
that mounts it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from bench.core.errors import BenchError

# click's UsageError, from whichever click typer uses (typer 0.29 vendors its own copy)
USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn BenchError / Ctrl-C into one line and an exit code instead of a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BenchError as exc:
            typer.echo(exc.one_line(), err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # a folder where a file belongs, a read-only disk, ...
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or exc} (check that this path is the "
                       "file or folder it should be, and writable)", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: finished conversations are saved; re-run to resume",
                       err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class OneLineUsage(TyperGroup):
    """A command group whose option mistakes (unknown option, missing or malformed value) are
    one line too: ``typer.Typer(cls=OneLineUsage)``."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except USAGE_ERROR as exc:
            where = (getattr(exc, "ctx", None) or ctx).command_path
            message = exc.format_message().replace("\n", " ")  # type: ignore[attr-defined]
            typer.echo(f"error: {where}: {message} (see `{where} --help`)", err=True)
            raise typer.Exit(2) from None
