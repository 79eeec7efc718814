"""Built-in retrievers and generators, registered lazily (nothing heavy is imported here)."""

from bench.registry import generators, retrievers

retrievers.register("bm25", "baselines.retrievers.bm25:build", "BM25 over item titles (bm25s)")
retrievers.register(
    "sbert", "baselines.retrievers.dense:build_sbert", "SBERT (sentence-transformers) embeddings"
)
retrievers.register(
    "roberta", "baselines.retrievers.dense:build_roberta", "RoBERTa-large, mean pooling"
)
retrievers.register(
    "simcse",
    "baselines.retrievers.dense:build_simcse",
    "SimCSE-large (princeton-nlp/sup-simcse-roberta-large), CLS pooling",
)
retrievers.register(
    "blair", "baselines.retrievers.dense:build_blair", "BLaIR-base (hyp1231/blair-roberta-base)"
)
retrievers.register(
    "openai-emb",
    "baselines.retrievers.openai_emb:build",
    "OpenAI text-embedding-3-large via any /v1/embeddings server",
)
retrievers.register(
    "dataset:st",
    "baselines.retrievers.shipped:build_st",
    "the release's precomputed candidates_st (SBERT; unordered)",
)
retrievers.register(
    "dataset:gpt_large",
    "baselines.retrievers.shipped:build_gpt_large",
    "the release's precomputed candidates_gpt_large (OpenAI-emb large; unordered)",
)
generators.register(
    "oracle",
    "baselines.generators.oracle:build",
    "sees the true visual attributes of synthetic items (vision upper bound)",
)
generators.register(
    "lexical",
    "baselines.generators.lexical:build",
    "text-only: picks the candidate whose title overlaps the conversation most",
)
