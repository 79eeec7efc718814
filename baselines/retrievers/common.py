"""What every built-in retriever shares: query/document text and option checking.

Query = the conversation context with its ``<submission>``/``<comment>`` markers removed;
document = the item title (plus the description with ``with_description = true``). Keeping
both in one place guarantees BM25 and the dense retrievers see exactly the same text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bench.context import BuildContext
from bench.data.schema import Conversation, Item
from bench.errors import BenchError

_MARKUP = re.compile(r"</?\s*(?:submission|comment)\b[^>]*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def query_text(conversation: Conversation) -> str:
    return _SPACE.sub(" ", _MARKUP.sub(" ", conversation.context)).strip()


def doc_text(item: Item, with_description: bool) -> str:
    if with_description and item.description:
        return f"{item.title} {item.description}".strip()
    return item.title.strip()


def read_options(
    ctx: BuildContext,
    name: str,
    defaults: Mapping[str, Any],
    types: Mapping[str, type] | None = None,
) -> dict[str, Any]:
    """``ctx.options`` checked against ``defaults``: unknown keys and wrong types are errors.

    A value must have its default's type (an int is fine where a float is expected); keys whose
    default is ``None`` take their type from ``types``. Typos fail here, not hours later.
    """
    where = f"[retrievers.{name}]"
    unknown = sorted(set(ctx.options) - set(defaults))
    if unknown:
        raise BenchError(
            f"unknown option {', '.join(map(repr, unknown))}",
            where=where,
            hint=f"known: {', '.join(sorted(defaults))}",
        )
    values = {key: ctx.option(key, default) for key, default in defaults.items()}
    for key, value in values.items():
        default = defaults[key]
        kind = type(default) if default is not None else (types or {}).get(key)
        if value is None or kind is None:
            continue
        accepted = (int, float) if kind is float else kind
        if not isinstance(value, accepted) or isinstance(value, bool) != (kind is bool):
            raise BenchError(f"option {key!r} must be {kind.__name__}, got {value!r}", where=where)
    return values


def positive(options: Mapping[str, Any], name: str, *keys: str) -> None:
    """Reject zero or negative sizes early, with the option's name."""
    for key in keys:
        if options[key] is not None and options[key] <= 0:
            raise BenchError(
                f"option {key!r} must be positive, got {options[key]!r}",
                where=f"[retrievers.{name}]",
            )
