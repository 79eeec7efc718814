"""Entry points: built-ins come like plug-ins, CLI sub-apps mount, broken plug-ins: one line."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bench.core import registry
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from tests.test_cli import bench, one_line_error

BENCH_DIR = Path(registry.__file__).parent


def plugin_site(root: Path, entry_points_txt: str, modules: dict[str, str]) -> dict[str, str]:
    """A one-distribution site folder (``acme-plugin 1.0``); returns the env that finds it."""
    info = root / "acme_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points_txt)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
    return {"PYTHONPATH": str(root)}


def test_bench_never_imports_baselines_or_lavic() -> None:
    for file in BENCH_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("baselines", "lavic") for n in names), file


def test_builtins_are_entry_points_of_this_distribution() -> None:
    for group in registry.GROUPS:  # baselines and lavic each declare their generators
        ours = [ep for ep in entry_points(group=group) if ep.dist.name == registry.DISTRIBUTION]
        assert ours and all(registry.origin_of(ep) == registry.BUILTIN for ep in ours)
    registry.load_plugins()
    assert {e.name for e in registry.retrievers if e.origin == registry.BUILTIN} >= {
        "bm25", "sbert", "dataset:st"}
    assert registry.generators.entry("llava-1.5+img").origin == registry.BUILTIN
    assert registry.generators.entry("lavic").origin == registry.BUILTIN


def test_a_lookup_loads_the_entry_points_first() -> None:
    """No caller has to remember ``load_plugins()``: a fresh process finds the built-ins."""
    code = "from bench.core import registry; print('bm25' in registry.retrievers)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert proc.stdout.strip() == "True"


def test_stale_metadata_without_builtins_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with pytest.raises(BenchError, match=r"declares no lavic_bench\.\* entry points") as err:
        registry.load_plugins()
    assert "reinstall" in err.value.one_line()


def test_failing_builtin_import_raises_its_real_error(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.load_plugins()
    monkeypatch.setitem(sys.modules, "baselines.retrievers.bm25", None)  # import now fails
    with pytest.raises(ImportError, match=r"baselines\.retrievers\.bm25"):
        registry.retrievers.build("bm25", BuildContext(options={}))


def test_plugin_whose_target_fails_is_one_line_naming_it() -> None:
    reg: registry.Registry[object] = registry.Registry("retriever")
    registry._Scoped(reg, "acme-plugin 1.0").register("acme", "acme_missing_mod:build", "x")
    with pytest.raises(BenchError) as err:
        reg.build("acme", BuildContext(options={}))
    line = err.value.one_line()
    assert line.startswith("error: acme-plugin 1.0: plug-in 'acme' (acme_missing_mod:build)")
    assert "ModuleNotFoundError" in line and "\n" not in line


def test_broken_plugin_distribution_is_one_line_and_names_it(tmp_path: Path) -> None:
    env = plugin_site(tmp_path, "[lavic_bench.generators]\nacme = acme_gen:register\n",
                      {"acme_gen": "raise RuntimeError('acme is broken')\n"})
    line = one_line_error(bench("ls", env=env))
    assert "acme-plugin 1.0" in line and "acme = acme_gen:register" in line
    assert "RuntimeError: acme is broken" in line


CLI_APP = """
import typer
app = typer.Typer()

@app.command()
def hello(name: str = "world") -> None:
    print(f"hello {name} from acme")

@app.command()
def bye() -> None:
    print("bye")
"""


def test_cli_group_mounts_a_sub_app_without_the_harness_importing_it(tmp_path: Path) -> None:
    env = plugin_site(tmp_path, "[lavic_bench.cli]\nacme = acme_cli:app\n", {"acme_cli": CLI_APP})
    proc = bench("acme", "hello", "--name", "lavic", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello lavic from acme"
    assert "acme" in bench("--help", env=env).stdout
    assert bench("acme", "bye", env=env).stdout.strip() == "bye"


def test_broken_cli_plugin_leaves_other_commands_working(tmp_path: Path) -> None:
    env = plugin_site(tmp_path, "[lavic_bench.cli]\nacme = acme_cli_missing:app\nls = x:y\n", {})
    line = one_line_error(bench("acme", "anything", "--flag", env=env))
    assert "plug-in [lavic_bench.cli] acme = acme_cli_missing:app failed" in line
    assert "acme-plugin 1.0" in line
    listed = bench("ls", env=env)
    assert listed.returncode == 0 and "bm25" in listed.stdout
    assert "clashes with `bench ls`" in listed.stderr
