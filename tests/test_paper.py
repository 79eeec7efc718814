"""The transcribed paper numbers: completeness, spot checks against the PDF, and lookups."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from bench.core.errors import BenchError
from bench.results import paper

DOMAINS = ("all_beauty", "amazon_fashion", "amazon_home")


def _hr1(retriever: str, setting: str, method: str) -> tuple[float | None, ...]:
    rows = [paper.lookup(retriever, setting, method, d) for d in DOMAINS]
    assert all(r is not None for r in rows), (retriever, setting, method)
    return tuple(r.hr1 for r in rows if r is not None)


def test_every_table_row_is_present() -> None:
    rows = paper.reported()
    # Methods x 3 domains: T3 5+3+2+1, T4 3+2+1, T5 6+3+2+1, T6 3+2+1, T7 4, T8 2.
    assert Counter(r.table for r in rows) == {3: 33, 4: 18, 5: 36, 6: 18, 7: 12, 8: 6}
    assert len({(r.table, r.setting, r.method, r.domain) for r in rows}) == len(rows)
    assert {r.domain for r in rows} == set(DOMAINS)


def test_vocabulary() -> None:
    retrievers = {"bm25", "sbert", "roberta", "simcse", "blair", "openai-emb"}
    for r in paper.reported():
        assert r.setting in paper.SETTINGS
        if r.setting == "retrieval":
            assert r.method == r.retriever in retrievers
            assert r.valid_ratio is None
        else:
            assert r.retriever == ("openai-emb" if r.table in (5, 6) else "sbert")


def test_spot_checks_against_the_paper() -> None:
    assert _hr1("sbert", "title+image", "lavic") == (0.1187, 0.1232, 0.3197)
    assert _hr1("sbert", "title", "gpt-4o") == (0.1271, 0.1278, 0.3350)
    assert _hr1("openai-emb", "title+image", "lavic") == (0.1743, 0.1787, 0.3537)
    assert _hr1("openai-emb", "title", "gpt-4o") == (0.2005, 0.1944, 0.4055)
    assert _hr1("openai-emb", "retrieval", "openai-emb") == (0.1461, 0.1393, 0.3224)
    assert _hr1("sbert", "retrieval", "sbert") == (0.0551, 0.0681, 0.2166)
    assert _hr1("sbert", "title", "llava-1.6") == (0.0770, 0.0827, 0.2030)
    assert _hr1("sbert", "training", "lavic-combined") == (0.1021, 0.1220, 0.3141)
    vicuna = paper.lookup("openai-emb", "title", "vicuna", "amazon_fashion")
    assert vicuna is not None and vicuna.valid_ratio == 0.9867
    zero = paper.lookup("sbert", "title+image", "llava-1.5", "amazon_home")
    assert zero is not None and (zero.hr1, zero.valid_ratio) == (0.0, 0.0)


def test_oom_cells_are_empty_with_a_note() -> None:
    beauty = paper.lookup("sbert", "ablation", "lavic-entire-tokens", "all_beauty")
    assert beauty is not None and (beauty.hr1, beauty.valid_ratio, beauty.note) == (
        0.0256,
        0.9456,
        "",
    )
    for domain in ("amazon_fashion", "amazon_home"):
        row = paper.lookup("sbert", "ablation", "lavic-entire-tokens", domain)
        assert row is not None and (row.hr1, row.valid_ratio, row.note) == (None, None, "o.o.m.")


def test_repeated_numbers_agree_across_tables() -> None:
    """Table 5 repeats Table 3's retrievers; LaViC appears in Tables 3, 4, 7 and 8."""
    facts: defaultdict[tuple[str, str, str, str], set[tuple[float | None, ...]]] = defaultdict(set)
    for r in paper.reported():
        facts[(r.retriever, r.setting, r.method, r.domain)].add((r.hr1, r.valid_ratio))
    assert all(len(v) == 1 for v in facts.values())
    assert _hr1("sbert", "ablation", "lavic") == _hr1("sbert", "title+image", "lavic")
    assert _hr1("sbert", "training", "lavic-separate") == _hr1("sbert", "title+image", "lavic")


def test_matching() -> None:
    alone = paper.matching("sbert", "none")
    assert {(r.table, r.method) for r in alone} == {(3, "sbert")}
    # The release's shipped SBERT lists compare with the paper's SBERT rows, shown once.
    lavic = paper.matching("dataset:st", "lavic")
    assert {(r.table, r.setting) for r in lavic} == {(3, "title+image")}
    assert {r.setting for r in paper.matching("openai-emb", "llava-1.6")} == {"title"}
    with_images = paper.matching("openai-emb", "llava-1.6+img")
    assert {(r.setting, r.method) for r in with_images} == {("title+image", "llava-1.6")}
    assert paper.matching("dataset:st", "none") == ()
    assert paper.matching("sbert", "unknown-model") == ()
    # LaViC's named configurations sit next to the paper's Table 7 / 8 rows.
    for model, method in (("lavic-no-images", "lavic-wo-images"),
                          ("lavic-no-distill", "lavic-wo-distillation"),
                          ("lavic-entire-tokens", "lavic-entire-tokens"),
                          ("lavic-combined", "lavic-combined")):
        rows = paper.matching("dataset:st", model)
        assert len(rows) == 3 and {r.method for r in rows} == {method}


def test_reported_csv_is_found_from_the_package() -> None:
    assert paper.REPORTED_CSV.is_file()
    assert paper.REPORTED_CSV.parent.name == "defaults"


def test_malformed_csv_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "reported.csv"
    header = ",".join(paper.COLUMNS)
    bad.write_text(f"{header}\n3,sbert,title,vicuna,all_beauty,0.1o,,\n", encoding="utf-8")
    with pytest.raises(BenchError, match="not a number") as err:
        paper.load(bad)
    assert err.value.where == f"{bad}:2"
    bad.write_text("table,method\n", encoding="utf-8")
    with pytest.raises(BenchError, match="columns"):
        paper.load(bad)
