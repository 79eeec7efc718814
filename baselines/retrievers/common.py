"""What every built-in retriever shares: the query and document text.

Query = the conversation context with its ``<submission>``/``<comment>`` markers removed;
document = the item title (plus the description with ``with_description = true``). Keeping
both in one place guarantees BM25 and the dense retrievers see exactly the same text.
"""

from __future__ import annotations

import re

from bench.task.data.schema import Conversation, Item

_MARKUP = re.compile(r"</?\s*(?:submission|comment)\b[^>]*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def query_text(conversation: Conversation) -> str:
    return _SPACE.sub(" ", _MARKUP.sub(" ", conversation.context)).strip()


def doc_text(item: Item, with_description: bool) -> str:
    if with_description and item.description:
        return f"{item.title} {item.description}".strip()
    return item.title.strip()
