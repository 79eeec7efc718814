"""The one way options are checked: a pydantic schema per dataset, retriever and generator.

A factory declares its schema with ``@takes(Schema)``, so the harness can check a table before
any work starts and plug-ins can declare theirs the same way; factories without one receive
their table unchecked (as before schemas existed). ``validate`` turns the first problem into
one line naming the file, table and key, with a did-you-mean for a misspelt key -- a typo such
as ``max_lenght`` must fail, not fall back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from bench.core.errors import BenchError

S = TypeVar("S", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])
SCHEMA_ATTR = "options_schema"


class Options(BaseModel):
    """Base of every schema: unknown keys and wrong types are errors (TOML values are typed,
    so nothing is coerced: ``"4"`` is not 4, ``1`` is not true); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NoOptions(Options):
    """For an entry that takes no options: any key in its table is an error."""


def validate(schema: type[S], raw: Mapping[str, Any], where: str) -> S:
    """``raw`` as ``schema``, or a one-line BenchError at ``where`` (e.g. ``bench.toml
    [generators.vicuna]``)."""
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as exc:
        raise _one_line(exc, schema, where) from None


def _one_line(exc: ValidationError, schema: type[BaseModel], where: str) -> BenchError:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "(table)"
    known = sorted(schema.model_fields)
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return BenchError(f"unknown key {key!r}", where=where,
                          hint=f"{guess}known: {', '.join(known) or 'none'}")
    if error["type"] == "missing":
        return BenchError(f"missing key {key!r}", where=where, hint=f"set {key} = ...")
    field = schema.model_fields.get(str(error["loc"][0]))
    doc = field.description if field is not None and field.description else None
    return BenchError(f"{key} = {error['input']!r}: {error['msg'][0].lower()}{error['msg'][1:]}",
                      where=where, hint=doc)


def takes(schema: type[BaseModel] | Callable[[], type[BaseModel] | None]) -> Callable[[F], F]:
    """Declare the schema of a registry factory (``@takes(MyOptions)`` above ``def build``);
    a wrapper that imports its target lazily passes a function that finds the schema."""

    def mark(factory: F) -> F:
        setattr(factory, SCHEMA_ATTR, schema)
        return factory

    return mark


def schema_of(factory: Any) -> type[BaseModel] | None:
    schema = getattr(factory, SCHEMA_ATTR, None)
    if schema is None or isinstance(schema, type):
        return schema
    return schema()


def check(factory: Any, raw: Mapping[str, Any], where: str) -> None:
    """Validate ``raw`` against the factory's declared schema, if it has one."""
    schema = schema_of(factory)
    if schema is not None:
        validate(schema, raw, where)


def check_tables(spec: Any) -> None:
    """Every ``[datasets.X]`` / ``[retrievers.X]`` / ``[generators.X]`` table must name a
    registered entry: a misspelt name, or a dotted one left unquoted (``[generators.llava-1.6]``
    is table ``llava-1`` holding ``6``), would otherwise be ignored."""
    from bench.core import registry

    for kind, reg, tables in (("datasets", registry.datasets, spec.dataset_tables),
                              ("retrievers", registry.retrievers, spec.retriever_options),
                              ("generators", registry.generators, spec.generator_options)):
        known = [entry.name for entry in reg]
        for name in tables:
            if name in reg:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            guess = f"did you mean {close[0]!r}? " if close else ""
            raise BenchError(f"[{kind}.{name}] names no {reg.kind}", where=spec.source,
                             hint=f"{guess}quote names with dots: [{kind}.\"llava-1.6\"]; "
                             "see `bench ls`")
