"""benchmarks/token_economy.py: LLaVA-1.6 feature counts and prompt counting (offline).

The real Mistral tokenizer is downloaded by the benchmark itself, never by a test.
"""

from __future__ import annotations

import pytest

from bench.task.data.schema import Item
from bench.task.prompt import IMAGE_SLOT, render
from benchmarks import token_economy as te

PINPOINTS = te.LLAVA_16_MISTRAL.grid_pinpoints


def _words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize(
    ("height", "width", "grid"),
    [
        (1500, 1500, (672, 672)),
        (480, 640, (672, 672)),
        (48, 48, (336, 672)),  # everything fits: least waste, first pinpoint wins the tie
        (336, 1008, (336, 1008)),
        (1008, 200, (1008, 336)),
    ],
)
def test_best_resolution(height: int, width: int, grid: tuple[int, int]) -> None:
    assert te.best_resolution(height, width, PINPOINTS) == grid


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        # 672x672 grid: 48x48 features + 48 newlines + the 24x24 base view
        (1500, 1500, 48 * 48 + 48 + 576),
        (500, 500, 48 * 48 + 48 + 576),
        # portrait 2:3 on 672x672: width un-pads to round(1000 * 48 / 1500) = 32 columns
        (1500, 1000, 48 * 32 + 48 + 576),
        # landscape 3:2: height un-pads to 32 rows, one newline per row
        (1000, 1500, 32 * 48 + 32 + 576),
        # 4:3 landscape: round(480 * 48 / 640) = 36 rows
        (480, 640, 36 * 48 + 36 + 576),
        # tiny square on the 336x672 grid (24x48): width un-pads to 24 columns
        (48, 48, 24 * 24 + 24 + 576),
        # exact 1:3 strip fills the 336x1008 grid (24x72) with no padding
        (336, 1008, 24 * 72 + 24 + 576),
    ],
)
def test_llava_next_image_tokens(height: int, width: int, expected: int) -> None:
    assert te.llava_next_image_tokens(height, width) == expected


def test_known_llava_next_counts() -> None:
    assert te.llava_next_image_tokens(1500, 1500) == 2928
    assert te.llava_next_image_tokens(48, 48) == 1176


def test_bad_image_size() -> None:
    with pytest.raises(ValueError):
        te.llava_next_image_tokens(0, 10)


def test_image_tokens_per_setting() -> None:
    sizes = [(1500, 1500), (48, 48), (480, 640)]
    assert te.image_tokens("titles", sizes) == []
    assert te.image_tokens("lavic-5", sizes) == [5, 5, 5]
    assert te.image_tokens("llava16-full", sizes) == [2928, 1176, 2340]
    with pytest.raises(ValueError):
        te.image_tokens("nope", sizes)


def test_prompt_tokens_expands_slots() -> None:
    text = f"pick one\nA: x\n{IMAGE_SLOT}\nB: y\n{IMAGE_SLOT}"
    # chunks: "[INST] pick one A: x" (5 words), "B: y" (2), " [/INST]" (1); + BOS
    assert te.prompt_tokens(_words, text, [5, 5]) == 1 + 5 + 2 + 1 + 10
    with pytest.raises(ValueError):
        te.prompt_tokens(_words, text, [5])


def _items(n: int) -> list[Item]:
    return [Item(asin=f"B00000000{i}", title=f"Item number {i}") for i in range(n)]


def test_settings_order_titles_lavic_full() -> None:
    items = _items(10)
    sizes = [(1500, 1500)] * 5 + [(100, 300)] * 5
    counts = {}
    for setting in te.SETTINGS:
        text = render("<submission>need a red mug</submission>", items, setting != "titles")
        counts[setting] = te.prompt_tokens(_words, text, te.image_tokens(setting, sizes))
    assert counts["titles"] < counts["lavic-5"] < counts["llava16-full"]
    assert counts["llava16-full"] - counts["lavic-5"] == sum(
        te.llava_next_image_tokens(h, w) - 5 for h, w in sizes)


def test_percentile_matches_linear_interpolation() -> None:
    values = [1, 2, 3, 4, 10]
    assert te.percentile(values, 50) == 3
    assert te.percentile(values, 95) == pytest.approx(4 + 0.8 * 6)
    assert te.percentile([7], 95) == 7


def test_summary_and_markdown() -> None:
    case = te.Case("c1", "ctx", tuple(_items(2)), ((10, 10), (10, 10)))
    corpus = te.Corpus("d", "all_beauty", "test", [case, case])
    row = te.summarize(corpus, "titles", [100, 5000], contexts=(4096,))
    assert row.mean == 2550 and row.max == 5000 and row.over == {"4096": 0.5}
    assert row.images_per_conversation == 2
    table = te.markdown([row], "t")
    assert "| titles | 2 | 2.0 | 2,550 |" in table and "50.0%" in table


def test_formula_matches_transformers_processor() -> None:
    processor = te.reference_processor()
    for height, width in [(1500, 1500), (1500, 1000), (480, 640), (48, 48), (75, 144),
                          (1008, 200), (999, 1001)]:
        expected = te.llava_next_image_tokens(height, width)
        assert te.processor_image_tokens(processor, height, width, run=False) == expected
    for height, width in [(480, 640), (96, 192)]:  # expand real images end to end
        expected = te.llava_next_image_tokens(height, width)
        assert te.processor_image_tokens(processor, height, width, run=True) == expected
