"""Progress bars that ``--no-progress`` (``TQDM_DISABLE=1``) silences everywhere.

tqdm lets an explicit ``disable=`` argument beat its environment variable, so every bar in
the project goes through :func:`bar`, which honours both.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm import tqdm


def bar(iterable: Any = None, *, quiet: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar, hidden when ``quiet`` (e.g. too short to matter) or when disabled."""
    return tqdm(iterable, disable=quiet or os.environ.get("TQDM_DISABLE") == "1", **kwargs)
