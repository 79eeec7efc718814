"""The command line as a user meets it: one-line errors, plug-ins, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugins" / "toy.py"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reddit-amazon"


def bench(*args: str, cwd: Path | None = None, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_ls_lists_every_kind_with_one_line_each() -> None:
    out = bench("ls").stdout.splitlines()
    names = {line.split()[1] for line in out}
    assert {"synthetic", "reddit-amazon", "bm25", "sbert", "roberta", "simcse", "blair",
            "openai-emb", "dataset:st", "dataset:gpt_large", "oracle", "lexical"} <= names


def test_unknown_names_are_one_line_errors(release: Path, tmp_path: Path) -> None:
    common = ["run", "--dataset", "reddit-amazon", "--data-dir", str(release),
              "--out", str(tmp_path / "o")]
    line = one_line_error(bench(*common, "--retriever", "bm26"))
    assert "unknown retriever 'bm26'" in line and "bm25" in line
    line = one_line_error(bench(*common, "--retriever", "dataset:st", "--model", "gpt-5x"))
    assert "unknown generator 'gpt-5x'" in line
    assert "unknown dataset" in one_line_error(bench("run", "--dataset", "nope"))


def test_bad_config_names_file_and_line_or_key(tmp_path: Path) -> None:
    bad = tmp_path / "bench.toml"
    bad.write_text('[run]\nretrievers = ["bm25"\n')
    assert f"{bad}:2" in one_line_error(bench("run", "--config", str(bad)))
    bad.write_text('[run]\nretreivers = ["bm25"]\n')
    line = one_line_error(bench("run", "--config", str(bad)))
    assert f"{bad} [run]: unknown key 'retreivers' (did you mean 'retrievers'?" in line
    bad.write_text('[run]\ntop_k = "ten"\n')
    assert f"{bad} [run]: top_k = 'ten'" in one_line_error(bench("run", "--config", str(bad)))


def test_missing_metadata_with_a_title_retriever_says_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data" / "all_beauty"
    data.mkdir(parents=True)
    data.joinpath("test.jsonl").write_text(json.dumps(
        {"context": "hi", "gt_items": ["B000000001"], "candidates_st": ["B000000001"]}) + "\n")
    line = one_line_error(bench("run", "--dataset", "reddit-amazon", "--data-dir",
                                str(tmp_path / "data"), "--retriever", "bm25",
                                "--out", str(tmp_path / "o")))
    assert "no item metadata" in line and "dataset:st" in line


def test_include_registers_a_third_party_retriever(release: Path, tmp_path: Path) -> None:
    proc = bench("run", "--dataset", "reddit-amazon", "--data-dir", str(release),
                 "--domain", "all_beauty", "--retriever", "toy-overlap", "--model", "none",
                 "--include", str(PLUGIN), "--out", str(tmp_path / "o"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("| toy-overlap ") for line in proc.stdout.splitlines())
    assert "toy-overlap" in bench("ls", "--include", str(PLUGIN)).stdout


def test_name_collisions_are_errors(tmp_path: Path) -> None:
    clash = tmp_path / "clash.py"
    clash.write_text("from bench import retrievers\n"
                     "retrievers.register('bm25', lambda ctx: None, 'mine')\n")
    line = one_line_error(bench("ls", "--include", str(clash)))
    assert "'bm25'" in line and "already registered" in line


def test_entry_point_plugin_is_found_without_include(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "acme_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "acme_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (site / "acme_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[lavic_bench.retrievers]\nacme = acme_plugin:register\n")
    (site / "acme_plugin.py").write_text(
        "def register(registry):\n"
        "    registry.register('acme', 'acme_plugin:build', 'ACME retriever', origin='acme')\n")
    proc = bench("ls", env={"PYTHONPATH": str(site)})
    assert any(line.split()[1] == "acme" and "[acme]" in line
               for line in proc.stdout.splitlines()), proc.stdout + proc.stderr


def test_validate_exit_codes(release: Path) -> None:
    ok = bench("data", "validate", str(release))
    assert ok.returncode == 0 and "all_beauty" in ok.stdout
    (release / "train_images" / "B000000001_0.jpg").write_bytes(b"not a jpeg")
    decoded = bench("data", "validate", str(release), "--decode-images")
    assert decoded.returncode == 0 and "without image: 1, corrupt image: 1" in decoded.stdout
    bad = release / "amazon_home" / "valid.jsonl"
    bad.write_text(bad.read_text() + "{not json\n")
    proc = bench("data", "validate", str(release))
    assert proc.returncode == 1 and f"{bad}:13" in proc.stdout


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/reddit-amazon absent")
def test_shipped_candidates_on_the_real_split(tmp_path: Path) -> None:
    proc = bench("run", "--dataset", "reddit-amazon", "--data-dir", str(SHARED),
                 "--split", "valid", "--domain", "all_beauty", "--retriever", "dataset:st",
                 "--model", "none", "--out", str(tmp_path / "o"), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    [payload] = [json.loads(p.read_text()) for p in (tmp_path / "o").rglob("results.json")]
    assert (payload["n_conversations"], payload["n_pairs"]) == (758, 864)
    assert round(payload["metrics"]["recall@10"], 4) == 0.2118
    assert payload["metrics"]["hr@1"] is None  # the shipped lists are not in score order
    assert payload["warnings"]["repeated_ground_truth"] == 27


def test_check_gates_on_a_baseline(release: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    run = bench("run", "--dataset", "reddit-amazon", "--data-dir", str(release),
                "--retriever", "toy-overlap", "--model", "none", "--include", str(PLUGIN),
                "--out", str(out), "--no-progress")
    assert run.returncode == 0, run.stderr
    baseline = tmp_path / "baseline.json"
    assert bench("check", str(out), "--baseline", str(baseline), "--write").returncode == 0
    assert bench("check", str(out), "--baseline", str(baseline)).returncode == 0
    data = json.loads(baseline.read_text())
    for cell in data["cells"]:
        cell["hr@1"] += 0.5
    baseline.write_text(json.dumps(data))
    assert bench("check", str(out), "--baseline", str(baseline), "--tolerance", "0.1"
                 ).returncode == 1


def test_synth_writes_a_dataset_the_loader_and_validator_accept(tmp_path: Path) -> None:
    made = bench("data", "synth", "--out", str(tmp_path / "w"), "--size", "small", "--seed", "3")
    assert made.returncode == 0, made.stderr
    report = bench("data", "validate", str(tmp_path / "w"))
    assert report.returncode == 0, report.stdout
    table = [line.split() for line in report.stdout.splitlines()[1:10]]
    assert {(row[0], row[1]) for row in table} == {
        (d, s) for d in ("all_beauty", "amazon_fashion", "amazon_home")
        for s in ("train", "valid", "test")}
    assert "without title: 0, without image: 0" in report.stdout
