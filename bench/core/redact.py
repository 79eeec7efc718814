"""Credentials never leave the process: URLs are written without their userinfo or query values.

A server URL may carry a key (``https://user:KEY@host/v1``, ``...?api_key=KEY``). The harness
passes the URL as given to the client that needs it, and writes it -- into ``cell.json``,
``results.json``, identities, error lines and log records -- only through ``mask_url``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: A URL inside free text (a log line, an exception message).
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def mask_url(url: str) -> str:
    """``url`` with any userinfo replaced by ``***`` and every query value by ``***``.

    Every query value goes, not only those named like keys: a gateway may call its key
    anything (``sig``, ``code``, ``k``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, MASK if parts.fragment else ""))


def mask_text(text: str) -> str:
    """Every URL inside ``text`` masked as by ``mask_url`` (for log lines and error texts)."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def redact(value: Any) -> Any:
    """A copy of an options value with every URL-looking string masked (nested tables too)."""
    if isinstance(value, str):
        return mask_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value
