"""The open-weights generators on tiny random models built in-process (no downloads).

A character-level tokenizer makes every ASIN its own token sequence, so scoring and parsing
are meaningful even though the weights are random; everything runs in fp32 on the CPU.
"""

from __future__ import annotations

import os
import random
import string
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from PIL import Image
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    LlavaProcessor,
    MistralConfig,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
from transformers.models.llava_next.image_processing_pil_llava_next import (
    LlavaNextImageProcessorPil,
)

from baselines.generators import hf
from baselines.generators.causal import VICUNA_FORMAT, CausalGenerator
from baselines.generators.hf import RENDER_MEMO, HFGenerator
from baselines.generators.scoring import score_continuations, splice
from bench.core import registry
from bench.core.context import BuildContext
from bench.core.errors import BenchError
from bench.core.weights import ModelPaths
from bench.task import prompt as table11
from bench.task.data.schema import Conversation, Item
from bench.task.parser import OVER_BUDGET
from bench.task.protocols import CachedGenerator, Choice, Request

pytestmark = pytest.mark.slow

IMAGE_TOKEN = "<image>"
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>"
    "{{ m['content'] if m['content'] is string else m['content'][0]['text'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
PATCH, SIDE = 14, 28  # a 2x2-patch vision tower
PINPOINTS = [[28, 56], [56, 28], [56, 56], [28, 84], [84, 28]]


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {t: i for i, t in enumerate(SPECIALS + list(string.printable))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens=[IMAGE_TOKEN],
    )
    tokenizer.chat_template = TEMPLATE
    return tokenizer


def text_config(kind: type, vocab: int) -> Any:
    return kind(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                bos_token_id=1, eos_token_id=2, pad_token_id=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a Llama causal LM, a LLaVA (CLIP + Llama) and a LLaVA-NeXT (CLIP + Mistral)."""
    root = tmp_path_factory.mktemp("tiny")
    tokenizer = char_tokenizer()
    vocab = len(tokenizer)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, image_size=SIDE, patch_size=PATCH,
                              projection_dim=16)
    shared = {"vision_config": vision, "image_token_index": tokenizer.convert_tokens_to_ids(
        IMAGE_TOKEN), "vision_feature_select_strategy": "default", "vision_feature_layer": -1}
    proc = {"tokenizer": tokenizer, "patch_size": PATCH, "num_additional_image_tokens": 1,
            "vision_feature_select_strategy": "default", "chat_template": TEMPLATE}
    torch.manual_seed(0)
    builds = {
        "llama": (LlamaForCausalLM(text_config(LlamaConfig, vocab)), tokenizer),
        "llava": (
            LlavaForConditionalGeneration(
                LlavaConfig(text_config=text_config(LlamaConfig, vocab), **shared)),
            LlavaProcessor(image_processor=CLIPImageProcessorPil(
                size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE}), **proc),
        ),
        "next": (
            LlavaNextForConditionalGeneration(LlavaNextConfig(
                text_config=text_config(MistralConfig, vocab), image_grid_pinpoints=PINPOINTS,
                **shared)),
            LlavaNextProcessor(image_processor=LlavaNextImageProcessorPil(
                size={"shortest_edge": SIDE}, crop_size={"height": SIDE, "width": SIDE},
                image_grid_pinpoints=PINPOINTS), **proc),
        ),
    }
    folders = {}
    for name, (model, processor) in builds.items():
        folders[name] = root / name
        model.save_pretrained(folders[name])
        processor.save_pretrained(folders[name])
    return folders


def asin(rng: random.Random) -> str:
    return "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))


def requests(n: int, image_dir: Path | None = None, *, seed: int = 0) -> list[Request]:
    """Synthetic-like requests of varied lengths; with ``image_dir``, images of varied shapes
    (and one missing file)."""
    rng = random.Random(seed)
    colours = ["red", "teal", "plum", "black", "striped", "glossy"]
    things = ["makeup bag", "mug", "scarf", "lamp", "tote"]
    sizes = [(30, 60), (90, 30), (40, 40), (200, 50), (64, 128)]
    out = []
    for k in range(n):
        items = []
        for j in range(10):
            path = None
            if image_dir is not None and (k, j) != (0, 3):
                path = image_dir / f"{k}_{j}.png"
                Image.new("RGB", sizes[(k + j) % len(sizes)], (20 * j, 90, 30 * k)).save(path)
            elif image_dir is not None:
                path = image_dir / "missing.png"
            title = f"{rng.choice(colours).title()} {rng.choice(things)} {rng.randint(1, 9)}"
            items.append(Item(asin=asin(rng), title=title, image_path=path))
        context = " ".join(
            f"<comment>I want a {rng.choice(colours)} {rng.choice(things)}.</comment>"
            for _ in range(1 + k % 3)
        )
        out.append(Request(Conversation(id=f"c{k}", context=context), tuple(items)))
    return out


def build(name: str, folder: Path, **options: Any) -> HFGenerator:
    registry.load_plugins()
    return registry.generators.build(
        name, BuildContext(options={"model_path": str(folder), "device": "cpu", **options})
    )


def greedy(gen: HFGenerator, feed: dict[str, torch.Tensor]) -> list[int]:
    """Reference decoding of one unpadded prompt: a full forward per new token, argmax, stop
    after EOS -- independent of ``generate``, left padding and the KV cache."""
    ids: list[int] = []
    for _ in range(gen.settings.max_new_tokens):
        tail = torch.tensor([ids], dtype=torch.long)
        step = dict(feed)
        if "inputs_embeds" in feed:
            step["inputs_embeds"] = torch.cat([feed["inputs_embeds"], gen.token_embeds(tail)], 1)
        else:
            step["input_ids"] = torch.cat([feed["input_ids"], tail], 1)
        width = step.get("inputs_embeds", step.get("input_ids")).shape[1]
        step["attention_mask"] = torch.ones((1, width), dtype=torch.long)
        with torch.no_grad():
            ids.append(int(gen.model(**step).logits[0, -1].argmax()))
        if ids[-1] in gen.eos_ids:
            break
    return ids


def check(gen: HFGenerator, choices: list[Choice], reqs: list[Request]) -> None:
    """Every batched, left-padded answer is the reference greedy answer of its prompt alone."""
    assert len(choices) == len(reqs)
    for choice, req in zip(choices, reqs, strict=True):
        rendered = gen.render(req)
        inputs = gen.model_inputs([rendered])
        ids = greedy(gen, gen.fed([rendered], inputs))
        assert choice.raw == gen.tokenizer.decode(ids, skip_special_tokens=True).strip()
        assert choice.usage["completion_tokens"] == len(ids)
        assert choice.usage["prompt_tokens"] == inputs["input_ids"].shape[1]
        assert choice.usage["truncated"] == 0


def check_scored(gen: HFGenerator, choices: list[Choice], reqs: list[Request]) -> None:
    """Each answer is the argmax of the naive (no KV reuse) scores, which the fast path equals."""
    for choice, req in zip(choices, reqs, strict=True):
        rendered = gen.render(req)
        fed = gen.fed([rendered], gen.model_inputs([rendered]))
        conts = [gen.continuation(a) for a in rendered.candidates]
        naive = score_continuations(gen.model, fed, conts, reuse_cache=False)
        fast = score_continuations(gen.model, fed, conts, group=4)
        assert torch.allclose(torch.tensor(fast.logprobs), torch.tensor(naive.logprobs),
                              atol=1e-4)
        best = max(range(len(conts)), key=naive.logprobs.__getitem__)
        assert choice.item_id == rendered.candidates[best] and choice.failure is None
        assert fast.forward_tokens < naive.forward_tokens
        assert choice.usage["forward_tokens"] == fast.forward_tokens


def image_runs(ids: list[int], token: int) -> list[int]:
    """Lengths of the runs of ``token`` in ``ids``, in order."""
    runs, current = [], 0
    for t in [*ids, -1]:
        if t == token:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    return runs


def test_vicuna_generate_and_score(tiny: dict[str, Path]) -> None:
    reqs = requests(3)
    gen = build("vicuna", tiny["llama"])
    assert isinstance(gen, CachedGenerator)
    assert "dtype=fp32" in gen.identity and "llama@" in gen.identity
    check(gen, gen.recommend(reqs), reqs)
    scorer = build("vicuna", tiny["llama"], decoding="score", batch_size=3)
    check_scored(scorer, scorer.recommend(reqs), reqs)


def test_vicuna_format_without_chat_template(tiny: dict[str, Path]) -> None:
    gen = build("vicuna", tiny["llama"])
    gen.templater.chat_template = None
    text = gen.render(requests(1)[0]).text
    assert text.startswith(VICUNA_FORMAT.split("{prompt}")[0])
    assert text.endswith(" ASSISTANT:")
    assert gen.add_special_tokens(text)  # BOS comes from the tokenizer, not the template


def test_llava15_image_tokens(tiny: dict[str, Path], tmp_path: Path) -> None:
    reqs = requests(2, tmp_path)
    gen = build("llava-1.5", tiny["llava"], images=True)
    processor = gen.templater
    rendered = [gen.render(r) for r in reqs]
    ids = gen.model_inputs(rendered)["input_ids"]
    per_image = (SIDE // PATCH) ** 2  # "default" drops CLS: 1 extra token minus 1
    for row, r in zip(ids.tolist(), rendered, strict=True):
        expected = processor._get_num_multimodal_tokens(
            image_sizes=[(i.height, i.width) for i in r.images]).num_image_tokens
        assert expected == [per_image] * 10
        assert image_runs(row, processor.image_token_id) == expected
        assert r.text.count(IMAGE_TOKEN) == 10
    assert rendered[0].usage["missing_images"] == 1 and rendered[1].usage["missing_images"] == 0
    choices = gen.recommend(reqs)
    check(gen, choices, reqs)
    assert choices[0].usage["missing_images"] == 1
    text_only = build("llava-1.5", tiny["llava"])
    assert IMAGE_TOKEN not in text_only.render(reqs[0]).text
    check(text_only, text_only.recommend(reqs), reqs)


def test_llava16_any_resolution(tiny: dict[str, Path], tmp_path: Path) -> None:
    reqs = requests(2, tmp_path)
    gen = build("llava-1.6", tiny["next"], images=True)
    rendered = [gen.render(r) for r in reqs]
    ids = gen.model_inputs(rendered)["input_ids"].tolist()
    for row, r in zip(ids, rendered, strict=True):
        runs = image_runs(row, gen.templater.image_token_id)
        assert runs == gen.image_tokens(r.images)
        assert len(runs) == 10 and len(set(runs)) > 1  # shapes change the token count
    check(gen, gen.recommend(reqs), reqs)
    scorer = build("llava-1.6", tiny["next"], images=True, decoding="score")
    check_scored(scorer, scorer.recommend(reqs), reqs)


def test_batch_size_does_not_change_answers(tiny: dict[str, Path]) -> None:
    reqs = requests(5, seed=3)
    one = build("vicuna", tiny["llama"], batch_size=1).recommend(reqs)
    four = build("vicuna", tiny["llama"], batch_size=4).recommend(reqs)
    assert [(c.item_id, c.raw, c.failure) for c in one] == [
        (c.item_id, c.raw, c.failure) for c in four
    ]
    assert any(c.raw for c in one)


def test_truncation_keeps_instruction_candidates_and_cue(tiny: dict[str, Path]) -> None:
    req = requests(1)[0]
    long = Request(
        Conversation(id="long", context="OLDEST " + "blah " * 400 + "NEWEST wish"),
        req.candidates,
    )
    gen = build("vicuna", tiny["llama"], max_length=1200, max_new_tokens=8)
    rendered = gen.render(long)
    assert rendered.usage == {"truncated": 1}
    assert table11.instruction(False) in rendered.text
    assert table11.candidate_block(req.candidates, False) in rendered.text
    assert rendered.text.endswith("<assistant>")
    assert "NEWEST wish" in rendered.text and "OLDEST" not in rendered.text
    assert gen.count_tokens(rendered.text) <= 1200 - 8
    choice = gen.recommend([long])[0]
    assert choice.usage["truncated"] == 1 and choice.usage["prompt_tokens"] <= 1192
    assert build("vicuna", tiny["llama"]).render(long).usage == {"truncated": 0}


def test_truncation_counts_expanded_image_tokens(tiny: dict[str, Path], tmp_path: Path) -> None:
    req = requests(1, tmp_path)[0]
    long = Request(Conversation(id="long", context="blah " * 300 + "<image> NEWEST"),
                   req.candidates)
    gen = build("llava-1.6", tiny["next"], images=True, max_length=1400)
    rendered = gen.render(long)
    assert rendered.usage["truncated"] == 1 and "NEWEST" in rendered.text
    assert rendered.text.count(IMAGE_TOKEN) == 10  # the literal one in the text was defused
    length = gen.model_inputs([rendered])["input_ids"].shape[1]
    assert 1400 - 10 - 5 <= length <= 1400 - 10  # as full as the budget allows


def test_no_room_for_the_conversation_is_a_failure_or_a_refusal(tiny: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    req = requests(1, tmp_path)[0]
    gen = build("llava-1.5", tiny["llava"], images=True, max_length=300)  # set by the user
    rendered = gen.render(req)
    assert rendered.usage["over_budget"] == 1 and rendered.usage["truncated"] == 1
    [choice] = gen.recommend([req])
    assert (choice.item_id, choice.failure) == (None, OVER_BUDGET)
    assert choice.usage["over_budget"] == 1 and "model" not in vars(gen)  # nothing was asked
    long = Request(req.conversation,
                   tuple(replace(i, title="a very long title " * 30) for i in req.candidates))
    with pytest.raises(BenchError) as err:  # the default context cannot hold the candidates
        build("llava-1.5", tiny["llava"], images=True).render(long)
    line = err.value.one_line()
    assert "leave no room for the conversation" in line and "set max_length" in line


def test_image_settings_default_to_the_whole_context(tiny: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf, "MAX_LENGTH_CAP", 1000)
    assert build("llava-1.6", tiny["next"], images=True).max_length == 4096
    assert build("llava-1.6", tiny["next"]).max_length == 1000
    assert build("vicuna", tiny["llama"]).max_length == 1000
    assert build("vicuna", tiny["llama"], max_length=1500).max_length == 1500


def test_cache_key_covers_prompt_images_and_settings(tiny: dict[str, Path],
                                                     tmp_path: Path) -> None:
    req = requests(1, tmp_path)[0]
    gen = build("llava-1.5", tiny["llava"], images=True)
    key = gen.cache_key(req)
    assert key == gen.cache_key(req)
    Image.new("RGB", (30, 60), (1, 2, 3)).save(req.candidates[0].image_path)
    assert gen.cache_key(req) != key
    scorer = build("llava-1.5", tiny["llava"], images=True, decoding="score")
    assert scorer.cache_key(req) != gen.cache_key(req)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dtype": "fp8"}, "dtype = 'fp8': input should be 'auto', 'bf16', 'fp16' or 'fp32'"),
        ({"decoding": "beam"}, "decoding = 'beam'"),
        ({"device": "tpu"}, "device = 'tpu'"),
        ({"batch_size": 0}, "batch_size = 0: input should be greater than 0"),
        ({"images": True}, "reads text only"),
        ({"images": "maybe"}, "images = 'maybe': input should be a valid boolean"),
        ({"max_lenght": 512}, "unknown key 'max_lenght' (did you mean 'max_length'?"),
        ({"devcie": "cpu"}, "unknown key 'devcie' (did you mean 'device'?"),
    ],
)
def test_bad_options_are_one_line_errors(
    tiny: dict[str, Path], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(BenchError) as err:
        build("vicuna", tiny["llama"], **options)
    line = err.value.one_line()
    assert message in line and "[generators.vicuna]" in line and "\n" not in line


def test_missing_weights_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        build("vicuna", tmp_path / "nowhere")
    registry.load_plugins()
    unknown = ModelPaths({"llava-hf/llava-1.5-7b-hf": "no-such-org/no-such-model"})
    with pytest.raises(BenchError, match="cannot load no-such-org/no-such-model") as err:
        registry.generators.build("llava-1.5", BuildContext(options={"device": "cpu"},
                                                            models=unknown))
    assert "\n" not in err.value.one_line()


def test_weights_load_only_when_a_model_call_is_needed(tiny: dict[str, Path]) -> None:
    gen = build("llava-1.6", tiny["next"], decoding="score")
    keys = [gen.cache_key(r) for r in requests(3)]  # what a fully cached re-run needs
    assert len(set(keys)) == 3
    assert "model" not in vars(gen)  # the cached_property never ran
    first = gen.recommend(requests(1))
    assert "model" in vars(gen)
    gen.release()  # after a grid's last cell of this model: the weights go
    assert "model" not in vars(gen)
    assert gen.recommend(requests(1)) == first and "model" in vars(gen)  # and come back


class Swapped(CausalGenerator):
    """Feeds every "a" of the prompt as the embedding of "b": a splice whose effect is known
    exactly (the model must answer as if the text said "b")."""

    def prompt_embeds(self, rendered: Any, inputs: Any) -> torch.Tensor:
        ids = inputs["input_ids"]
        a, b = self.tokenizer.convert_tokens_to_ids(["a", "b"])
        count = int((ids == a).sum())
        vectors = self.token_embeds(torch.tensor([b])).expand(count, -1)
        return splice(self.token_embeds(ids), ids, a, vectors)


def swapped(gen: HFGenerator) -> HFGenerator:
    gen.__class__ = Swapped
    return gen


def as_text(gen: HFGenerator, req: Request) -> dict[str, torch.Tensor]:
    """The manual computation: the prompt with "a" -> "b" in its text, as token ids."""
    text = gen.render(req).text.replace("a", "b")
    return dict(gen.tokenizer([text], return_tensors="pt",
                              add_special_tokens=gen.add_special_tokens(text)))


def test_prompt_embeds_drive_generation(tiny: dict[str, Path]) -> None:
    reqs = requests(6, seed=5)
    plain = build("vicuna", tiny["llama"], max_new_tokens=12).recommend(reqs)
    gen = swapped(build("vicuna", tiny["llama"], max_new_tokens=12, batch_size=3))
    spliced = gen.recommend(reqs)
    for choice, req in zip(spliced, reqs, strict=True):
        ids = greedy(gen, as_text(gen, req))
        assert choice.raw == gen.tokenizer.decode(ids, skip_special_tokens=True).strip()
    assert [c.raw for c in spliced] != [c.raw for c in plain]


def test_prompt_embeds_drive_kv_reuse_scoring(tiny: dict[str, Path]) -> None:
    reqs = requests(3, seed=2)
    plain = build("vicuna", tiny["llama"], decoding="score")
    gen = swapped(build("vicuna", tiny["llama"], decoding="score", batch_size=4))
    choices = gen.recommend(reqs)
    check_scored(gen, choices, reqs)
    for choice, req in zip(choices, reqs, strict=True):
        rendered = gen.render(req)
        conts = [gen.continuation(a) for a in rendered.candidates]
        fed = gen.fed([rendered], gen.model_inputs([rendered]))
        assert set(fed) == {"inputs_embeds", "attention_mask"}
        fast = score_continuations(gen.model, fed, conts, group=4).logprobs
        manual = score_continuations(gen.model, as_text(gen, req), conts).logprobs
        text = score_continuations(plain.model, plain.model_inputs([rendered]), conts).logprobs
        assert torch.allclose(torch.tensor(fast), torch.tensor(manual), atol=1e-4)
        assert not torch.allclose(torch.tensor(fast), torch.tensor(text), atol=1e-2)
        assert choice.item_id == rendered.candidates[max(range(10), key=manual.__getitem__)]


def test_splice_places_vectors_in_reading_order() -> None:
    ids = torch.tensor([[3, 7, 5, 7], [7, 5, 5, 5]])
    embeds = torch.zeros(2, 4, 2)
    vectors = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    out = splice(embeds, ids, 7, vectors)
    assert out[0, 1].tolist() == [1.0, 1.0] and out[0, 3].tolist() == [2.0, 2.0]
    assert out[1, 0].tolist() == [3.0, 3.0] and float(out[ids != 7].abs().sum()) == 0.0
    with pytest.raises(ValueError, match="3 placeholders for 2 vectors"):
        splice(embeds, ids, 7, vectors[:2])


def test_each_request_is_rendered_once(tiny: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gen = build("vicuna", tiny["llama"], decoding="score")
    calls: list[str] = []
    real = gen.render
    monkeypatch.setattr(gen, "render", lambda r: calls.append(r.conversation.id) or real(r))
    reqs = requests(3)
    keys = [gen.cache_key(r) for r in reqs]  # what the runner does first, then recommend
    gen.recommend(reqs)
    assert calls == ["c0", "c1", "c2"] and len(set(keys)) == 3
    gen.recommend(reqs[:1])  # a memo entry serves one recommend: then render again
    assert calls == ["c0", "c1", "c2", "c0"]
    many = requests(RENDER_MEMO + 5, seed=9)
    for r in many:
        gen.cache_key(r)
    gen.recommend([many[0], many[-1]])  # the oldest was dropped: the memo is bounded
    assert calls[4:] == [r.conversation.id for r in many] + [many[0].conversation.id]
