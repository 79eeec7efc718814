"""lavic/'s import contracts (pyproject.toml ``[tool.importlinter]``) catch what they promise:
the generator reaching the training loop, a data reader reaching a model library, and a lower
layer importing a stage."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.test_layers import ROOT, lint

LAVIC = ("lavic: commands > stages > training", "lavic generator does not import the training",
         "lavic data readers load no model library")


def test_lavic_contracts_break_on_the_imports_they_forbid(tmp_path: Path) -> None:
    copy = tmp_path / "lavic"
    shutil.copytree(ROOT / "lavic", copy, ignore=shutil.ignore_patterns("__pycache__"))
    for module, line in (("generator.py", "import lavic.stage2.rows"),  # rows -> training
                         ("stage1/data.py", "import lavic.model.views"),
                         ("store/checkpoint.py", "import lavic.stage2.config")):
        path = copy / module
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    code, report = lint(tmp_path, pythonpath=tmp_path)
    assert code == 1, report
    verdicts = {name: line.split()[-1] for line in report.splitlines() for name in LAVIC
                if line.startswith(name) and line.split()[-1] in ("KEPT", "BROKEN")}
    assert verdicts == dict.fromkeys(LAVIC, "BROKEN"), report
    for found in ("lavic.generator -> lavic.stage2.rows", "lavic.stage1.data -> lavic.model",
                  "lavic.store.checkpoint -> lavic.stage2.config"):
        assert found in report, report
