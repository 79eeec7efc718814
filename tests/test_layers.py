"""The layers as import-linter contracts (pyproject.toml ``[tool.importlinter]``): lavic above
baselines above bench; inside bench cli > cli_errors > results > execution > task > core; no
import cycle anywhere in bench. A broken contract fails with import-linter's own report, which
names every offending import."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ("lavic > baselines > bench", "bench: cli > cli_errors > results > execution",
             "bench has no import cycle")


def lint(cwd: Path, pythonpath: Path | None = None) -> tuple[int, str]:
    """``lint-imports`` with ``cwd``'s pyproject.toml, without a cache folder in the tree: its
    exit code and report (colour codes removed; older versions colour a pipe too)."""
    env = None if pythonpath is None else {"PYTHONPATH": str(pythonpath), "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    return done.returncode, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def verdicts(report: str) -> dict[str, str]:
    """Contract name prefix -> KEPT / BROKEN, from the report's summary lines."""
    found = {}
    for line in report.splitlines():
        for name in CONTRACTS:
            if line.startswith(name) and line.split()[-1] in ("KEPT", "BROKEN"):
                found[name] = line.split()[-1]
    return found


def test_the_tree_keeps_every_layer_contract() -> None:
    code, report = lint(ROOT)
    assert code == 0, report
    assert verdicts(report) == dict.fromkeys(CONTRACTS, "KEPT"), report  # all of them ran


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    """A copy of bench/ where the bottom layer imports the CLI (upward, and a cycle) and a
    metric imports lavic: each of the three contracts must report it."""
    copy = tmp_path / "bench"
    shutil.copytree(ROOT / "bench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    errors = copy / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom bench.cli import app  # noqa\n")
    metrics = copy / "task" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nimport lavic  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    code, report = lint(tmp_path, pythonpath=tmp_path)
    assert code == 1, report
    assert verdicts(report) == dict.fromkeys(CONTRACTS, "BROKEN"), report
    assert "bench.core.errors -> bench.cli" in report
    assert "bench.task.metrics -> lavic" in report
