"""A corpus of realistic user mistakes, run through the real command line (in-process).

Every case ends either in exit code 2 with exactly one ``error: where: what (hint)`` line on
stderr, or in success whose every changed count is a counted warning -- printed once, as one
line with its first example, and recorded in results.json -- and a denominator that equals the
number of conversations the case itself says should survive. Never a traceback.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from tests.conftest import ASINS

ROOT = Path(__file__).parents[1]
PLUGIN = Path(__file__).parent / "plugins" / "toy.py"
N = 12  # conversations per split in the fixture
CELL = ("reddit-amazon", "all_beauty", "test", "dataset-st", "none")


@dataclass(frozen=True)
class Case:
    """``setup(data, tmp)`` breaks something and returns the command line (after ``bench``)."""

    setup: Callable[[Path, Path], list[str]]
    error: tuple[str, ...] = ()  # fragments of the one error line; empty = must succeed
    warnings: dict[str, int] = field(default_factory=dict)  # exactly these in results.json
    n: int = N  # conversations that must be scored, on success
    model: str = "none"
    stdout: tuple[str, ...] = ()  # fragments a successful non-run command must print


def invoke(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr, result.exception


def run_args(data: Path, tmp: Path, *extra: str, model: str = "none") -> list[str]:
    return ["run", "--dataset", "reddit-amazon", "--data-dir", str(data), "--domain",
            "all_beauty", "--retriever", "dataset:st", "--model", model, "--out",
            str(tmp / "out"), "--no-progress", "--include", str(PLUGIN), *extra]


def split_file(data: Path) -> Path:
    return data / "all_beauty" / "test.jsonl"


def edit_rows(data: Path, change: Callable[[list], None]) -> None:
    rows = [json.loads(x) for x in split_file(data).read_text().splitlines()]
    change(rows)
    split_file(data).write_text("".join(json.dumps(r) + "\n" for r in rows))


def set_row(index: int, **values: object) -> Callable[[list], None]:
    def change(rows: list) -> None:
        rows[index].update(values)
    return change


def drop_key(index: int, key: str) -> Callable[[list], None]:
    def change(rows: list) -> None:
        del rows[index][key]
    return change


def rows_case(change: Callable[[list], None], **kw: object) -> Case:
    def setup(data: Path, tmp: Path) -> list[str]:
        edit_rows(data, change)
        return run_args(data, tmp)
    return Case(setup, **kw)  # type: ignore[arg-type]


def raw_case(text: str | bytes, *, line: int = 2, **kw: object) -> Case:
    """Replace split line ``line`` (1-based) with raw bytes."""
    def setup(data: Path, tmp: Path) -> list[str]:
        lines = split_file(data).read_bytes().splitlines(keepends=True)
        lines[line - 1] = text if isinstance(text, bytes) else text.encode() + b"\n"
        split_file(data).write_bytes(b"".join(lines))
        return run_args(data, tmp)
    return Case(setup, **kw)  # type: ignore[arg-type]


def whole_split(text: str, *fragments: str) -> Case:
    def setup(data: Path, tmp: Path) -> list[str]:
        split_file(data).write_text(text)
        return run_args(data, tmp)
    return Case(setup, error=fragments)


def meta_case(change: Callable[[Path], None], *fragments: str, **kw: object) -> Case:
    def setup(data: Path, tmp: Path) -> list[str]:
        change(data / "item2meta_train.json")
        return run_args(data, tmp)
    return Case(setup, error=fragments, **kw)  # type: ignore[arg-type]


def meta_text(text: str) -> Callable[[Path], None]:
    return lambda p: p.write_text(text)


def meta_entry(asin: str, value: object | None) -> Callable[[Path], None]:
    """Set ``asin``'s metadata to ``value``; ``None`` removes the entry."""
    def change(path: Path) -> None:
        meta = json.loads(path.read_text())
        meta[asin] = value
        if value is None:
            del meta[asin]
        path.write_text(json.dumps(meta))
    return change


def swap_for_dir(path: Path) -> None:
    path.unlink()
    path.mkdir()


def path_case(where: Callable[[Path, Path], Path], make: str,
              args: Callable[[Path, Path], list[str]], *fragments: str) -> Case:
    """``make`` = "dir" puts a folder where a file belongs, "file" the reverse."""
    def setup(data: Path, tmp: Path) -> list[str]:
        target = where(data, tmp)
        if target.exists():
            target.unlink() if target.is_file() else target.rename(tmp / "moved")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir() if make == "dir" else target.write_text("x")
        return args(data, tmp)
    return Case(setup, error=fragments)


def image_case(kind: str, asins: int = 1) -> Case:
    """A ``+img``-style run (toy-eyes reads images) with the first ``asins`` images broken."""
    def setup(data: Path, tmp: Path) -> list[str]:
        for asin in ASINS[:asins]:
            image = data / "train_images" / f"{asin}_0.jpg"
            if kind == "missing":
                image.unlink()
            elif kind == "empty":
                image.write_bytes(b"")
            elif kind == "truncated":
                image.write_bytes(image.read_bytes()[:40])
            else:
                image.write_text("GIF? no, an HTML error page")
        return run_args(data, tmp, model="toy-eyes")
    return Case(setup, warnings={"bad_image": N * asins}, model="toy-eyes")


def after_run(change: Callable[[Path], None], *extra: str, **kw: object) -> Case:
    """Run once, then leave ``change(cell_dir)`` behind for a second run."""
    def setup(data: Path, tmp: Path) -> list[str]:
        code, *_ = invoke(*run_args(data, tmp))
        assert code == 0
        change(tmp.joinpath("out", *CELL))
        return run_args(data, tmp, *extra)
    return Case(setup, **kw)  # type: ignore[arg-type]


def after_edit(change: Callable[[list], None], *extra: str, **kw: object) -> Case:
    def setup(data: Path, tmp: Path) -> list[str]:
        assert invoke(*run_args(data, tmp))[0] == 0
        edit_rows(data, change)
        return run_args(data, tmp, *extra)
    return Case(setup, **kw)  # type: ignore[arg-type]


def predictions_edit(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    def change(cell: Path) -> None:
        log = cell / "predictions.jsonl"
        log.write_text("".join(x + "\n" for x in edit(log.read_text().splitlines())))
        (cell / "results.json").unlink()
    return change


def args_only(*args: str) -> Callable[[Path, Path], list[str]]:
    return lambda data, tmp: [a.format(data=data, tmp=tmp) for a in args]


def with_run(*extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda data, tmp: run_args(data, tmp, *extra)


def toml(text: str) -> Callable[[Path, Path], list[str]]:
    """A run with ``--config`` holding ``text`` (``{data}`` and ``{tmp}`` filled in)."""
    def setup(data: Path, tmp: Path) -> list[str]:
        (tmp / "i").write_text("a file, not a folder")
        (tmp / "b.toml").write_text(text.format(data=data, tmp=tmp))
        return run_args(data, tmp, "--config", str(tmp / "b.toml"))
    return setup


def after_run_cmd(change: Callable[[Path], None], *args: str) -> Callable[[Path, Path], list[str]]:
    """Run once, leave ``change(cell_dir)`` behind, then run another command."""
    def setup(data: Path, tmp: Path) -> list[str]:
        assert invoke(*run_args(data, tmp))[0] == 0
        change(tmp.joinpath("out", *CELL))
        return [a.format(data=data, tmp=tmp) for a in args]
    return setup


def _truncate_first_image(data: Path, tmp: Path) -> list[str]:
    image = data / "train_images" / f"{ASINS[0]}_0.jpg"
    image.write_bytes(image.read_bytes()[:40])
    return ["data", "validate", str(data), "--decode-images"]


def _junk(i: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: [*lines[:i], "{oops", *lines[i + 1:]]


def _torn(lines: list[str]) -> list[str]:
    return [*lines[:-1], lines[-1][:15]]  # the "\n" the helper adds makes it a middle line


def _repeat_first(rows: list) -> None:
    rows.append(rows[0])


def _no_gt(rows: list) -> None:
    rows[3]["gt_items"] = []


CASES: dict[str, Case] = {
    # ----------------------------------------------------------- paths of the wrong kind
    "out is a file": path_case(lambda d, t: t / "out", "file", with_run(), "output folder",
                               "is a file", "--out"),
    "data dir is a file": path_case(lambda d, t: t / "f", "file",
                                    lambda d, t: run_args(t / "f", t), "found a file"),
    "data dir missing": Case(lambda d, t: run_args(t / "nope", t), error=("does not exist",)),
    "split file is a folder": path_case(lambda d, t: split_file(d), "dir", with_run(),
                                        "test.jsonl", "found a directory"),
    "metadata file is a folder": path_case(lambda d, t: d / "item2meta_train.json", "dir",
                                           with_run(), "item2meta_train.json", "directory"),
    "synth out is a file": path_case(lambda d, t: t / "s", "file",
                                     args_only("data", "synth", "--out", "{tmp}/s", "--size",
                                               "small"), "found a file", "--out"),
    "config is a folder": path_case(lambda d, t: t / "c.toml", "dir",
                                    lambda d, t: run_args(d, t, "--config", str(t / "c.toml")),
                                    "c.toml", "cannot read config"),
    "config missing": Case(with_run("--config", "/nonexistent/bench.toml"),
                           error=("does not exist", "--config")),
    "validate a file": path_case(lambda d, t: t / "v", "file",
                                 args_only("data", "validate", "{tmp}/v"), "not a directory"),
    "validate images dir is a file": path_case(
        lambda d, t: t / "imgs", "file",
        args_only("data", "validate", "{data}", "--images-dir", "{tmp}/imgs"),
        "images folder", "imgs"),
    "include missing": Case(with_run("--include", "/nope/plugin.py"),
                            error=("--include", "does not exist")),
    "include is a folder": Case(lambda d, t: run_args(d, t, "--include", str(t)),
                                error=("--include",)),
    "table of nothing": Case(args_only("table", "{tmp}"), error=("no results.json",)),
    "table path missing": Case(args_only("table", "{tmp}/nope"), error=("does not exist",)),
    "images_dir is a file": Case(toml('[datasets.reddit-amazon]\nimages_dir = "{tmp}/i"\n'),
                                 error=("images folder is not a directory",)),
    "images_dir missing": Case(toml('[datasets.reddit-amazon]\nimages_dir = "{tmp}/nope"\n'),
                               error=("images folder", "/nope")),
    "table of a corrupt results.json": Case(
        after_run_cmd(lambda c: (c / "results.json").write_text("{"), "table", "{tmp}/out"),
        error=("results.json", "unreadable results file")),
    "check against a missing baseline": Case(
        after_run_cmd(lambda c: None, "check", "{tmp}/out", "--baseline", "{tmp}/b.json"),
        error=("b.json", "unreadable baseline", "--write")),
    "check against a list baseline": Case(
        after_run_cmd(lambda c: (c.parents[5] / "b.json").write_text("[]"), "check",
                      "{tmp}/out", "--baseline", "{tmp}/b.json"),
        error=("b.json", "not a JSON object")),
    "validate names a truncated image": Case(_truncate_first_image,
                                             stdout=(f"{ASINS[0]}_0.jpg: image truncated",
                                                     "corrupt image: 1")),
    "data dir without domains": Case(lambda d, t: (t.joinpath("e").mkdir(), [
        "run", "--dataset", "reddit-amazon", "--data-dir", str(t / "e"), "--no-progress"])[1],
        error=("no {domain}/{split}.jsonl", "/e")),
    # ----------------------------------------------------------- files left by earlier runs
    "corrupt cell.json": after_run(lambda c: (c / "cell.json").write_text("{oops"),
                                   error=("cell.json", "unreadable cell file", "--overwrite")),
    "cell.json is a list": after_run(lambda c: (c / "cell.json").write_text("[]"),
                                     error=("cell.json", "not a JSON object")),
    "cell.json is a folder": after_run(lambda c: swap_for_dir(c / "cell.json"),
                                       error=("cell.json", "found a directory")),
    "corrupt cell.json, overwrite": after_run(lambda c: (c / "cell.json").write_text("{"),
                                              "--overwrite", warnings={}),
    "corrupt results.json": after_run(lambda c: (c / "results.json").write_text("{oops"),
                                      warnings={"stale_results": 1}),
    "results.json of another schema": after_run(
        lambda c: (c / "results.json").write_text('{"schema_version": 0}'),
        warnings={"stale_results": 1}),
    "results.json is a folder": after_run(lambda c: swap_for_dir(c / "results.json"),
                                          error=("results.json", "found a directory")),
    "predictions.jsonl is a folder": after_run(
        lambda c: ((c / "results.json").unlink(), swap_for_dir(c / "predictions.jsonl")),
        error=("predictions.jsonl",)),
    "malformed middle prediction line": after_run(predictions_edit(_junk(5)),
                                                  warnings={"bad_prediction_line": 1}),
    "two malformed prediction lines": after_run(predictions_edit(lambda x: _junk(2)(_junk(7)(x))),
                                                warnings={"bad_prediction_line": 2}),
    "prediction line without an id": after_run(
        predictions_edit(lambda x: [*x[:3], '{"prediction": null}', *x[4:]]),
        warnings={"bad_prediction_line": 1}),
    "prediction line missing fields": after_run(
        predictions_edit(lambda x: [*x[:3], '{"id": "all_beauty/test:4"}', *x[4:]]),
        warnings={"bad_prediction_line": 1}),
    "results.json missing keys": after_run(
        lambda c: (c / "results.json").write_text('{"schema_version": 1}'),
        warnings={"stale_results": 1}),
    "table of a results.json missing keys": Case(
        after_run_cmd(lambda c: (c / "results.json").write_text('{"schema_version": 1}'),
                      "table", "{tmp}/out"),
        error=("results.json", "lacks")),
    "torn last prediction line": after_run(
        lambda c: ((c / "results.json").unlink(), (c / "predictions.jsonl").write_text(
            (c / "predictions.jsonl").read_text()[:-30])), warnings={}),
    "edited split, stale cell": after_edit(set_row(0, gt_items=[ASINS[7]]),
                                           error=("different configuration",
                                                  "dataset_content_hash", "--overwrite")),
    "edited split, overwrite": after_edit(set_row(0, gt_items=[ASINS[7]]), "--overwrite",
                                          warnings={}),
    "another seed, stale cell": after_run(lambda c: None, "--seed", "3",
                                          error=("changed: seed",)),
    # ----------------------------------------------------------- split contents
    "empty split file": whole_split("", "no usable conversation", "test.jsonl"),
    "blank split file": whole_split("\n  \n\t\n", "no usable conversation"),
    "split of garbage": whole_split("oops\n{\n", "no usable conversation", "bad_json x2"),
    "split of JSON arrays": whole_split("[1]\n[2]\n", "no usable conversation", "bad_json"),
    "repeated conversation line": rows_case(_repeat_first,
                                            warnings={"repeated_conversation": 1}, n=N + 1),
    "context null": rows_case(set_row(2, context=None), warnings={"bad_context": 1}, n=N - 1),
    "context a list": rows_case(set_row(2, context=["hi", "there"]),
                                warnings={"bad_context": 1}, n=N - 1),
    "context a number": rows_case(set_row(2, context=7), warnings={"bad_context": 1}, n=N - 1),
    "context empty": rows_case(set_row(2, context=""), warnings={"empty_context": 1}),
    "context blank": rows_case(set_row(2, context="  \n"), warnings={"empty_context": 1}),
    "context missing": rows_case(drop_key(2, "context"), warnings={"missing_field": 1},
                                 n=N - 1),
    "gt_items missing": rows_case(drop_key(2, "gt_items"), warnings={"missing_field": 1},
                                  n=N - 1),
    "gt_items empty": rows_case(_no_gt, warnings={"no_ground_truth": 1}, n=N - 1),
    "gt_items a string": rows_case(set_row(3, gt_items=ASINS[0]),
                                   warnings={"bad_field": 1, "no_ground_truth": 1}, n=N - 1),
    "gt_items not an ASIN": rows_case(set_row(3, gt_items=["nope"]), warnings={"bad_asin": 1}),
    "gt_items repeated": rows_case(set_row(3, gt_items=[ASINS[3]] * 2),
                                   warnings={"repeated_ground_truth": 1}),
    "candidates repeated": rows_case(set_row(4, candidates_st=[ASINS[0]] * 2 + ASINS[1:10]),
                                     warnings={"duplicate_candidate": 1}),
    "candidates a string": rows_case(set_row(4, candidates_st="B000000001"),
                                     warnings={"bad_field": 1, "empty_candidates": 1}),
    "malformed JSON line": raw_case('{"context": "x"', warnings={"bad_json": 1}, n=N - 1),
    "line is a JSON array": raw_case("[1, 2]", warnings={"bad_json": 1}, n=N - 1),
    "invalid UTF-8": raw_case(json.dumps({"context": "caf\udcff", "gt_items": [ASINS[2]],
                                          "candidates_st": ASINS[:10]}).encode()
                              .replace(b"\\udcff", b"\xff") + b"\n",
                              warnings={"non_utf8": 1}),
    "unknown split": Case(with_run("--split", "train"), error=("no train split", "valid")),
    "unknown domain": Case(lambda d, t: [*run_args(d, t)[:5], "--domain", "beauty",
                                         *run_args(d, t)[7:]], error=("no test split",
                                                                      "'beauty'")),
    # ----------------------------------------------------------- item metadata
    "metadata duplicate key": meta_case(
        lambda p: p.write_text(p.read_text()[:-1] + f', "{ASINS[0]}": {{"title": "again"}}}}'),
        warnings={"duplicate_metadata": 1}),
    "metadata null title": meta_case(meta_entry(ASINS[0], {"title": None}),
                                     warnings={"no_title": 1}),
    "metadata blank title": meta_case(meta_entry(ASINS[1], {"title": " "}),
                                      warnings={"no_title": 1}),
    "metadata title a number": meta_case(meta_entry(ASINS[1], {"title": 42}),
                                         warnings={"no_title": 1}),
    "metadata entry not an object": meta_case(meta_entry(ASINS[2], "Red lipstick"),
                                              warnings={"bad_metadata": 1}),
    # The fixture ships ASINS[:10] as every conversation's candidates_st.
    "metadata entry missing": Case(
        lambda d, t: (meta_entry(ASINS[0], None)(d / "item2meta_train.json"),
                      run_args(d, t, model="toy-flaky"))[1],
        warnings={"missing_metadata": N}, model="toy-flaky"),
    "metadata a list": meta_case(meta_text("[]"), "item2meta_train.json", "JSON object"),
    "metadata malformed": meta_case(meta_text('{"B000000001": {"title": "x"},\n oops}'),
                                    "item2meta_train.json:2", "malformed JSON"),
    "metadata empty file": meta_case(meta_text(""), "item2meta_train.json", "malformed"),
    # ----------------------------------------------------------- images in an image run
    "image missing": image_case("missing"),
    "image empty": image_case("empty"),
    "image truncated": image_case("truncated"),
    "image not an image": image_case("not an image"),
    "three images broken": image_case("empty", asins=3),
    # ----------------------------------------------------------- unknown names
    "unknown retriever": Case(lambda d, t: [*run_args(d, t), "--retriever", "bm26"],
                              error=("unknown retriever 'bm26'", "bm25")),
    "unknown model": Case(lambda d, t: run_args(d, t, model="gpt-5x"),
                          error=("unknown generator 'gpt-5x'",)),
    "unknown dataset": Case(args_only("run", "--dataset", "nope"), error=("unknown dataset",)),
    "unknown synth size": Case(args_only("data", "synth", "--out", "{tmp}/s", "--size", "huge"),
                               error=("huge",)),
    # ----------------------------------------------------------- runs that went wrong
    "every request failed": Case(lambda d, t: run_args(d, t, model="toy-flaky"),
                                 error=("every request failed", "toy-flaky", "re-run"),
                                 warnings={"all_failed": N}, model="toy-flaky"),
    "a request over budget": Case(lambda d, t: run_args(d, t, model="toy-flaky"),
                                  warnings={"over_budget": 1}, model="toy-flaky"),
    "every conversation cut to fit": Case(lambda d, t: run_args(d, t, model="toy-flaky"),
                                          warnings={"truncated": N}, model="toy-flaky"),
    # ----------------------------------------------------------- options (validated by the
    # option schema; here to show the CLI applies bench.toml's rules)
    "limit zero": Case(with_run("--limit", "0"), error=("limit = 0", "greater than 0")),
    "limit negative": Case(with_run("--limit", "-3"), error=("limit = -3",)),
    "top-k zero": Case(with_run("--top-k", "0"), error=("top_k = 0",)),
    "batch size zero": Case(with_run("--batch-size", "0"), error=("batch_size = 0",)),
    "batch size negative": Case(with_run("--batch-size", "-1"), error=("batch_size = -1",)),
    "no retrievers": Case(toml("[run]\nretrievers = []\n"), error=("b.toml", "retrievers")),
    "no models": Case(toml("[run]\nmodels = []\n"), error=("b.toml", "models")),
}
FLAKY = {"every request failed": "error", "a request over budget": "over_budget",
         "every conversation cut to fit": "truncated"}
# Codes recorded outside a run's results.json, and the tests that cover them.
ELSEWHERE = {"bad_cache_line": "tests/test_response_cache.py",
             "no_pair_hits": "tests/test_check_pairs.py"}


def recorded_codes() -> set[str]:
    """Every warning code the harness's source can record, read from the source (not from
    CASES): the first argument of ``*warnings.add(...)`` and of ``*problems.append((...))``, a
    variable resolved through its assignments in the same function."""
    codes: set[str] = set()
    for path in sorted([*ROOT.joinpath("bench").rglob("*.py"),
                        *ROOT.joinpath("baselines").rglob("*.py")]):
        for func in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(func, ast.FunctionDef):
                continue
            assigned = {t.id: node.value for node in ast.walk(func) if isinstance(node, ast.Assign)
                        for t in node.targets if isinstance(t, ast.Name)}
            for call in ast.walk(func):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.args):
                    continue
                owner, code = ast.unparse(call.func.value), call.args[0]
                if call.func.attr == "append" and owner.endswith("problems"):
                    code = code.elts[0] if isinstance(code, ast.Tuple) else code
                elif call.func.attr != "add" or not owner.endswith("warnings"):
                    continue
                code = assigned.get(code.id, code) if isinstance(code, ast.Name) else code
                codes.update(n.value for n in ast.walk(code)
                             if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return codes


def test_the_corpus_covers_every_warning_code_in_the_source() -> None:
    covered = {code for case in CASES.values() for code in case.warnings}
    assert set(ELSEWHERE) <= recorded_codes()
    assert covered == recorded_codes() - set(ELSEWHERE)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_user_mistake(name: str, release: Path, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOY_FLAKY", FLAKY.get(name, "ok"))
    for var in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):  # `--no-progress` sets them
        monkeypatch.setenv(var, os.environ.get(var, "0"))
    monkeypatch.chdir(tmp_path)
    case = CASES[name]
    args = case.setup(release, tmp_path)
    code, stdout, stderr, exc = invoke(*args)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert "Traceback" not in stdout + stderr
    errors = [x for x in stderr.splitlines() if x.startswith("error:")]
    if case.error:
        assert code == 2, stderr
        assert len(errors) == 1, stderr
        assert all(f in errors[0] for f in case.error), errors[0]
        if name not in FLAKY:  # a flagged run also prints its summary first
            assert stderr.splitlines() == errors
        if case.warnings:  # a flagged run records its warnings before it fails
            cell = tmp_path.joinpath("out", *CELL[:-1], case.model)
            assert json.loads((cell / "results.json").read_text())["warnings"] == case.warnings
        return
    assert code == 0 and not errors, stderr
    if args[0] != "run":
        assert all(f in stdout for f in case.stdout), stdout
        return
    cell = tmp_path.joinpath("out", *CELL[:-1], case.model)
    payload = json.loads((cell / "results.json").read_text())
    assert payload["warnings"] == case.warnings
    assert payload["n_conversations"] == case.n  # the denominator the case expects
    printed = [x for x in stderr.splitlines() if x.startswith("warning [")]
    assert sorted(x.split("]")[0][9:] for x in printed) == sorted(case.warnings)  # each once
    for line in printed:
        code_name = line.split("]")[0][9:]
        if code_name in case.warnings:
            assert line.startswith(f"warning [{code_name}] x{case.warnings[code_name]}: ")
