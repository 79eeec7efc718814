"""The release loader on the real validation files and on broken inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.core.errors import BenchError, Warnings
from bench.task.data.release import ReleaseDataset
from bench.task.data.validate import validate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reddit-amazon"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/reddit-amazon absent")


@needs_shared
def test_real_validation_split_counts() -> None:
    ds = ReleaseDataset(SHARED)
    counts = {}
    for domain in ds.domains():
        split = ds.load(domain, "valid", warnings=Warnings())
        counts[domain] = (len(split.conversations), split.n_pairs)
    assert counts == {
        "all_beauty": (758, 864),
        "amazon_fashion": (797, 971),
        "amazon_home": (368, 390),
    }


@needs_shared
def test_real_conversations_never_carry_the_answer_text() -> None:
    split = ReleaseDataset(SHARED).load("all_beauty", "valid", warnings=Warnings())
    conv = split.conversations[0]
    assert not hasattr(conv, "gt") and not hasattr(conv, "gt_items")
    assert "amazon.com/" in split.answers[conv.id].gt_text  # the answer lives apart
    assert all(split.answers[c.id].gt_text not in c.context for c in split.conversations)


@needs_shared
def test_validate_reports_real_counts_and_no_structural_errors() -> None:
    report = validate(SHARED)
    assert report.ok
    beauty = next(r for r in report.splits if r.domain == "all_beauty")
    assert (beauty.counts["conversations"], beauty.counts["pairs"]) == (758, 864)
    assert 0.10 < beauty.counts["mojibake"] / 758 < 0.25
    assert report.items["no_title"] == report.items["referenced"]  # no item2meta_train.json


def test_asins_starting_with_a_digit_load(release: Path) -> None:
    split = ReleaseDataset(release).load("all_beauty", "test")
    assert "1000000005" in split.catalog.items
    assert split.catalog.get("B00000000C").image_path is None  # the one image not written


def test_bad_lines_are_counted_with_file_and_line(release: Path) -> None:
    path = release / "all_beauty" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"context": "oops"\n'  # malformed JSON
    lines[3] = json.dumps({"context": "no answer"}).encode() + b"\n"  # missing gt_items
    lines[4] = lines[4].replace(b"Looking", b"Looking \xff")  # invalid UTF-8
    path.write_bytes(b"".join(lines))
    warnings = Warnings()
    split = ReleaseDataset(release).load("all_beauty", "test", warnings=warnings)
    assert len(split.conversations) == 10
    assert warnings.counts["bad_json"] == 1 and warnings.counts["missing_field"] == 1
    assert warnings.counts["non_utf8"] == 1
    assert warnings.first["bad_json"].startswith(f"{path}:3:")
    report = validate(release)
    assert not report.ok
    assert any(e.startswith(f"{path}:3:") for e in report.errors)


def test_duplicate_candidates_are_dropped_but_repeated_ground_truths_count(release: Path) -> None:
    path = release / "all_beauty" / "test.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["candidates_st"] = [rows[0]["candidates_st"][0]] * 2 + rows[0]["candidates_st"][1:]
    rows[0]["gt_items"] = [rows[0]["gt_items"][0]] * 2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    warnings = Warnings()
    split = ReleaseDataset(release).load("all_beauty", "test", warnings=warnings)
    first = split.conversations[0]
    assert len(first.shipped_candidates["st"]) == 10
    assert len(split.answers[first.id].gt_items) == 2  # the paper counts both pairs
    assert warnings.counts["duplicate_candidate"] == 1
    assert warnings.counts["repeated_ground_truth"] == 1


def test_mojibake_repair_is_optional(release: Path) -> None:
    path = release / "all_beauty" / "test.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["context"] = "<submission>I\u00e2\u0080\u0099m looking</submission>"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = ReleaseDataset(release).load("all_beauty", "test").conversations[0].context
    fixed = ReleaseDataset(release, fix_mojibake=True).load("all_beauty", "test")
    assert "\u00e2" in raw
    assert fixed.conversations[0].context == "<submission>I'm looking</submission>"


def test_missing_split_and_directory_are_one_line_errors(release: Path) -> None:
    with pytest.raises(BenchError, match="no train split") as exc:
        ReleaseDataset(release).load("all_beauty", "train")
    assert "valid" in exc.value.one_line() and "\n" not in exc.value.one_line()
    with pytest.raises(BenchError, match="does not exist"):
        ReleaseDataset(release / "nope")


def test_broken_item_metadata_names_the_line(release: Path) -> None:
    (release / "item2meta_train.json").write_text('{"B000000001": {"title": "x"},\n  oops}')
    with pytest.raises(BenchError) as exc:
        ReleaseDataset(release).load("all_beauty", "test")
    assert exc.value.where == f"{release / 'item2meta_train.json'}:2"
