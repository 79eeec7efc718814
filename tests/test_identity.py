"""A finished cell is reused only when nothing that changes its output changed; failed requests
are retried; flagged cells say so; unreadable log lines are counted, never lost."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.core import registry
from bench.core.config import RunSpec
from bench.core.errors import BenchError
from bench.core.weights import weights_identity
from bench.execution.runner import Grid

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"
N = 12  # conversations per split in the fixture


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_MODELS", raising=False)
    registry.load_plugins()
    registry.include(PLUGIN)


def spec(release: Path, out: Path, model: str = "toy-slow", **kw: object) -> RunSpec:
    base = RunSpec(
        dataset="reddit-amazon", domains=("all_beauty",), split="test",
        retrievers=("dataset:st",), models=(model,), out=str(out), batch_size=4,
        dataset_tables={"reddit-amazon": {"data_dir": str(release)}},
    )
    return replace(base, **kw)


def run(s: RunSpec, **kw: object) -> dict:
    [payload] = Grid(s, progress=False, echo=lambda _: None, **kw).run()  # type: ignore[arg-type]
    return payload


def log_lines(out: Path, model: str = "toy-slow") -> list[str]:
    cell = out / "reddit-amazon" / "all_beauty" / "test" / "dataset-st" / model
    return (cell / "predictions.jsonl").read_text().splitlines()


def test_editing_the_split_refuses_the_stale_cell(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = run(spec(release, out))
    path = release / "all_beauty" / "test.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[0]["gt_items"] != [rows[0]["candidates_st"][5]]
    rows[0]["gt_items"] = [rows[0]["candidates_st"][5]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BenchError, match="dataset_content_hash") as exc:
        run(spec(release, out))
    assert "--overwrite" in exc.value.one_line()
    fresh = run(spec(release, out), overwrite=True)
    assert fresh["dataset"]["content_hash"] != first["dataset"]["content_hash"]
    assert fresh["n_conversations"] == first["n_conversations"] == N


def test_a_new_generator_identity_refuses_the_cell(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o"
    run(spec(release, out))
    monkeypatch.setenv("TOY_IDENTITY", "toy-slow/v2")
    with pytest.raises(BenchError, match=r"changed: model_identity\)"):
        run(spec(release, out))


@pytest.mark.parametrize("via_env", [True, False])
def test_a_changed_model_mapping_refuses_the_cell(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    out = tmp_path / "o"

    def mapped(path: str) -> RunSpec:
        if via_env:
            monkeypatch.setenv("BENCH_MODELS", f"toy-weights={path}")
            return spec(release, out, "toy-mapped")
        return spec(release, out, "toy-mapped", model_paths={"toy-weights": path})

    first = run(mapped("/weights/a"))
    assert first["config"]["inputs"]["models"] == {"toy-weights": "/weights/a"}
    assert run(mapped("/weights/a"))["created"] == first["created"]  # reused as it is
    with pytest.raises(BenchError, match=r"changed: models\)"):
        run(mapped("/weights/b"))


def test_a_malformed_middle_line_keeps_every_readable_line(release: Path, tmp_path: Path) -> None:
    clean = run(spec(release, tmp_path / "clean"))
    out = tmp_path / "o"
    run(spec(release, out))
    cell = out / "reddit-amazon" / "all_beauty" / "test" / "dataset-st" / "toy-slow"
    lines = log_lines(out)
    lines[4] = '{"id": "all_beauty/test:5", "candidates": [oops'
    (cell / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    (cell / "results.json").unlink()
    again = run(spec(release, out))
    assert again["warnings"] == {"bad_prediction_line": 1}
    assert again["metrics"] == clean["metrics"] and again["n_conversations"] == N
    assert log_lines(out) == log_lines(tmp_path / "clean")


def test_unreadable_results_are_recomputed_with_a_warning(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = run(spec(release, out))
    cell = out / "reddit-amazon" / "all_beauty" / "test" / "dataset-st" / "toy-slow"
    (cell / "results.json").write_text("{not json")
    said: list[str] = []
    [again] = Grid(spec(release, out), progress=False, echo=said.append).run()
    assert again["metrics"] == first["metrics"] and again["warnings"] == {"stale_results": 1}
    assert sum(line.startswith("warning [stale_results] x1: ") for line in said) == 1


def test_a_dead_server_cell_is_flagged_and_retried_on_rerun(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o"
    dead = spec(release, out, "toy-flaky")
    monkeypatch.setenv("TOY_FLAKY", "error")
    payload = run(dead)
    assert payload["flags"] == ["all_failed"]
    assert payload["failures"] == {"error": N} and payload["warnings"] == {"all_failed": N}
    monkeypatch.setenv("TOY_FLAKY", "ok")  # the server is back
    healed = run(dead)
    assert healed["flags"] == [] and healed["failures"] == {}
    assert all(json.loads(x)["failure"] is None for x in log_lines(out, "toy-flaky"))
    assert len(log_lines(out, "toy-flaky")) == N


def test_only_failed_requests_are_predicted_again(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o"
    half = spec(release, out, "toy-flaky")
    monkeypatch.setenv("TOY_FLAKY", "error-odd")
    payload = run(half)
    odd = sum(1 for line in range(1, N + 1) if line % 2)
    assert payload["failures"] == {"error": odd} and payload["flags"] == []
    before = [json.loads(x) for x in log_lines(out, "toy-flaky")]
    monkeypatch.setenv("TOY_FLAKY", "ok")
    healed = run(half)
    after = [json.loads(x) for x in log_lines(out, "toy-flaky")]
    assert healed["failures"] == {} and healed["n_conversations"] == N
    assert [a for a, b in zip(after, before, strict=True) if b["failure"] is None] == [
        b for b in before if b["failure"] is None]  # answered ones untouched


@pytest.mark.parametrize(("mode", "flags", "warnings"), [
    ("over_budget", ["over_budget"], {"over_budget": 1}),
    ("truncated", ["truncated"], {"truncated": N}),
    ("ok", [], {}),
])
def test_over_budget_and_truncated_cells_are_flagged(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, flags: list[str],
    warnings: dict[str, int],
) -> None:
    monkeypatch.setenv("TOY_FLAKY", mode)
    s = spec(release, tmp_path / "o", "toy-flaky")
    said: list[str] = []
    [payload] = Grid(s, progress=False, echo=said.append).run()
    assert payload["flags"] == flags and payload["warnings"] == warnings
    summary = [line for line in said if "HR@1" in line]
    assert len(summary) == 1 and (("FLAGGED: " + ", ".join(flags)) in summary[0]) == bool(flags)


def test_hub_identity_pins_the_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from baselines.generators.hf import Source

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--org--tiny"
    assert weights_identity("org/tiny") is None  # not downloaded: nothing to pin yet
    for commit, weights in (("a" * 40, b"w1"), ("b" * 40, b"w2")):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        (snap / "config.json").write_text("{}")
        (snap / "model.safetensors").write_bytes(weights)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    first = Source("org/tiny").fingerprint()
    assert first.startswith("org/tiny@" + "a" * 40 + "#")
    (repo / "refs" / "main").write_text("b" * 40)
    second = Source("org/tiny").fingerprint()
    assert second.startswith("org/tiny@" + "b" * 40 + "#") and second != first
    assert weights_identity("org/tiny") == second  # one helper for retrievers and generators
