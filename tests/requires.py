"""Test inputs that the README's install lines provide: packages its test command installs
(weights, readers) and programs its system-packages line installs (Chromium).

Missing on a developer's machine, a test that needs one skips and says what to install. Missing
under CI (``CI`` set, as CI runs), it fails: CI runs exactly the README's command, so a skip
there would hide a broken install step behind a green run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from bench.core.errors import BenchError
from bench.core.weights import package_dir


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def missing(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a missing test input fails, never skips)")
    pytest.skip(reason)


def installed(package: str, install: str) -> Path:
    """The folder of ``package`` (found by its files: it need not import), else :func:`missing`."""
    try:
        return package_dir(package)
    except BenchError:
        missing(f"needs `{install}`")


def program(path: str, install: str) -> Path:
    """An executable a system package puts at ``path``, else :func:`missing`."""
    found = Path(path)
    if not (found.is_file() and os.access(found, os.X_OK)):
        missing(f"needs {path}: `{install}`")
    return found
