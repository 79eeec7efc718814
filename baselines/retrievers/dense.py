"""Dense retrievers from the paper's baseline table: SBERT, RoBERTa, SimCSE and BLaIR.

Queries and titles go through the same encoder; items are ranked by cosine similarity (unit
vectors, exact chunked top-k). Pooling follows each model's own reference usage:

* ``sbert`` -- sentence-transformers with the checkpoint's own pooling modules. The LaViC paper
  does not name its SBERT checkpoint; the default ``sentence-transformers/all-MiniLM-L6-v2`` is
  the library's standard general-purpose model (set ``model`` to use another).
* ``roberta`` -- ``roberta-large`` is not a sentence encoder, so token states are mean-pooled
  over the attention mask (the usual choice for raw encoders).
* ``simcse`` -- ``princeton-nlp/sup-simcse-roberta-large``. The ``simcse`` package encodes
  supervised checkpoints with ``pooler="cls"``, which is ``pooler_output`` (the CLS state
  through the MLP pooler that the conversion script stores as the BERT/RoBERTa pooler); only
  ``unsup-`` models use the raw CLS state (``cls_before_pooler``). We do the same: ``pooler``.
* ``blair`` -- ``hyp1231/blair-roberta-base``; BLaIR's README embeds with
  ``last_hidden_state[:, 0]``, i.e. the raw CLS state: ``cls``.

``max_length`` defaults to 512 tokens for the transformers models (RoBERTa's limit; the
``simcse`` tool itself defaults to 128, which would cut most Reddit requests) and to the
checkpoint's own ``max_seq_length`` for ``sbert``. Truncation keeps the beginning of a
conversation, where the submission states the request. Options: ``model``, ``pooling``
(transformers models: ``mean`` | ``cls`` | ``pooler``), ``max_length``, ``batch_size``,
``device`` (default: cuda when available), ``with_description``, ``chunk_size``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
from pydantic import Field, PositiveInt

from baselines.retrievers.embedding import EmbeddingOptions, EmbeddingRetriever, l2_normalize
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import takes
from bench.core.weights import weights_identity
from bench.execution.array_cache import encoder_key

SBERT_DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"


def _device(requested: str | None) -> str:
    import torch

    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


class LocalEncoder(ABC):
    """A model loaded in-process, lazily: a warm cache never loads the weights at all."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        pooling: str,
        max_length: int | None,
        batch_size: int,
        device: str | None,
    ) -> None:
        self.name, self.path, self.pooling, self.max_length = name, path, pooling, max_length
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        weights = weights_identity(path)
        if weights is None:
            self._ensure_loaded()
            weights = weights_identity(path) or path
        self.key = encoder_key(
            name,
            weights=weights,
            pooling=pooling,
            max_length=max_length or "model-default",
            normalization="l2",
        )

    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        self.device = _device(self.device)
        try:
            self._model = self._load()
        except (OSError, ValueError) as exc:
            raise BenchError(
                f"cannot load model {self.name!r} from {self.path!r}: {type(exc).__name__}: {exc}",
                hint="check the name, or map it to a local folder in bench.toml [models] or "
                "$BENCH_MODELS (name=path)",
            ) from exc

    def encode(self, texts: list[str]) -> np.ndarray:
        self._ensure_loaded()
        return l2_normalize(np.asarray(self._forward(texts), dtype=np.float32))

    @abstractmethod
    def _load(self) -> Any:
        """The model object (the tokenizer, if any, goes on ``self``)."""

    @abstractmethod
    def _forward(self, texts: list[str]) -> np.ndarray:
        """One batch -> raw sentence vectors."""


class TransformersEncoder(LocalEncoder):
    """``AutoModel`` + pooling (``mean`` / ``cls`` state / ``pooler`` output)."""

    def _load(self) -> Any:
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        return AutoModel.from_pretrained(self.path).to(self.device).eval()

    def _forward(self, texts: list[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            output = self._model(**batch)
        return pool(output, batch["attention_mask"], self.pooling).float().cpu().numpy()


def pool(output: Any, attention_mask: Any, pooling: str) -> Any:
    """Sentence vectors from a transformers model output (before normalisation)."""
    if pooling == "cls":
        return output.last_hidden_state[:, 0]
    if pooling == "pooler":
        if getattr(output, "pooler_output", None) is None:
            raise BenchError(
                "pooling 'pooler' needs a model with a pooler layer", hint="use pooling = 'cls'"
            )
        return output.pooler_output
    mask = attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
    return (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class SentenceTransformerEncoder(LocalEncoder):
    """A sentence-transformers checkpoint with its own modules; those (pooling, dense layers,
    normalisation) are config files, so the weights fingerprint pins them."""

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.path, device=self.device)
        if self.max_length:
            model.max_seq_length = self.max_length
        return model

    def _forward(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(
            texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False
        )


class SbertOptions(EmbeddingOptions):
    model: str | None = Field(None, description="default: the retriever's own checkpoint")
    max_length: PositiveInt | None = Field(None, description="default: the model's own")
    device: str | None = Field(None, description="default: cuda when available, else cpu")


class TransformersOptions(SbertOptions):
    max_length: PositiveInt | None = 512
    pooling: Literal["mean", "cls", "pooler"] | None = Field(
        None, description="default: the retriever's own")


def _build(
    ctx: BuildContext, name: str, default_model: str, default_pooling: str | None
) -> EmbeddingRetriever:
    """``default_pooling`` None means a sentence-transformers model (it pools itself)."""
    schema = TransformersOptions if default_pooling else SbertOptions
    opts = ctx.parse(schema, f"[retrievers.{name}]")
    model = opts.model or default_model
    pooling = getattr(opts, "pooling", None) or default_pooling or "sentence-transformers"
    encoder_class = TransformersEncoder if default_pooling else SentenceTransformerEncoder
    encoder = encoder_class(
        model,
        ctx.models.resolve(model),
        pooling=pooling,
        max_length=opts.max_length,
        batch_size=opts.batch_size,
        device=opts.device,
    )
    return EmbeddingRetriever(
        name,
        encoder,
        cache_dir=ctx.cache_dir,
        with_description=opts.with_description,
        chunk_size=opts.chunk_size,
    )


@takes(SbertOptions)
def build_sbert(ctx: BuildContext) -> EmbeddingRetriever:
    return _build(ctx, "sbert", SBERT_DEFAULT, None)


@takes(TransformersOptions)
def build_roberta(ctx: BuildContext) -> EmbeddingRetriever:
    return _build(ctx, "roberta", "roberta-large", "mean")


@takes(TransformersOptions)
def build_simcse(ctx: BuildContext) -> EmbeddingRetriever:
    return _build(ctx, "simcse", "princeton-nlp/sup-simcse-roberta-large", "pooler")


@takes(TransformersOptions)
def build_blair(ctx: BuildContext) -> EmbeddingRetriever:
    return _build(ctx, "blair", "hyp1231/blair-roberta-base", "cls")
