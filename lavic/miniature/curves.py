"""What each stage learnt: the Trainer's log history as curves, and the stage-1 probe
(held-out attributes named from the view embeddings alone, against images shuffled)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

from lavic.miniature.preset import PROBED, Preset


def curves(stage_dir: Path) -> list[dict[str, Any]]:
    """The Trainer's log history (loss per step, validation metric per evaluation) of the
    newest checkpoint in ``stage_dir``."""
    states = sorted(stage_dir.glob("checkpoint-*/trainer_state.json"),
                    key=lambda p: int(p.parent.name.rpartition("-")[2]))
    if not states:
        return []
    return list(json.loads(states[-1].read_text(encoding="utf-8")).get("log_history", []))


def write_curve(out: Path, name: str, history: list[dict[str, Any]]) -> None:
    """``out/name.json`` and ``out/name.csv`` (step, loss, every eval_* metric)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
    keys = sorted({k for row in history for k in row if k == "loss" or k.startswith("eval_")})
    with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *keys])
        for row in history:
            if any(k in row for k in keys):
                writer.writerow([row.get("step"), *[row.get(k, "") for k in keys]])


def attribute_probe(model_dir: Path, stage1: Path, world: Path, preset: Preset, *,
                    device: str = "auto", max_new_tokens: int = 48) -> dict[str, Any]:
    """Held-out images (``item2meta_valid.jsonl``, in no training set): greedy descriptions
    from the stage-1 model given only each image's view embeddings, scored per attribute
    (colour, pattern, shape read from the text by the world's own lexicon) against the item's
    true attributes, once with each item's own image and once with the images shuffled across
    items (a derangement): the gap is what the embeddings carry, not what the title implies."""
    import torch
    from transformers import AutoTokenizer, LlavaNextForConditionalGeneration

    from baselines.generators.chat import ChatTurn
    from bench.task.data.synthetic import ATTRIBUTES_FILE, requested_attributes
    from lavic.model.embed import spliced_inputs, view_embeddings
    from lavic.model.views import ViewMaker
    from lavic.settings import placement
    from lavic.stage1.distill import load_image
    from lavic.stage1.prompt import describe_prompt
    from lavic.store import checkpoint

    where, dtype = placement(device, "fp32")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    turn = ChatTurn(tokenizer)
    model = LlavaNextForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    model = checkpoint.merge_adapter(model.to(where), stage1 / checkpoint.ADAPTER_DIR).eval()
    truth = json.loads((world / ATTRIBUTES_FILE).read_text(encoding="utf-8"))
    records = [json.loads(line) for line in
               (world / "item2meta_valid.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()][: preset.probe_items]
    asins = [r["image_name"].rsplit("_", 1)[0] for r in records]
    maker = ViewMaker(model.config, preset.views)
    slots = tokenizer.convert_ids_to_tokens(model.config.image_token_index) * preset.views
    order = list(range(len(records)))
    rng = random.Random(0)
    shuffled = order[:]
    while len(order) > 1 and any(a == b for a, b in zip(order, shuffled, strict=True)):
        rng.shuffle(shuffled)
    result: dict[str, Any] = {"items": len(records), "views": preset.views}
    for name, images in (("own", order), ("shuffled", shuffled)):
        right = {a: 0 for a in PROBED}
        texts = []
        for i, j in zip(order, images, strict=True):
            ids = torch.tensor([turn.encode(describe_prompt(records[i]["title"], slots))],
                               device=where)
            pixels = maker.batch([load_image(world / "valid_images" / records[j]["image_name"])])
            with torch.no_grad():
                views = view_embeddings(model, pixels.to(where, dtype))
                embeds = spliced_inputs(model, ids, views)
                new = model.generate(inputs_embeds=embeds, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.eos_token_id)
            text = tokenizer.decode(new[0], skip_special_tokens=True)
            texts.append(text)
            said = requested_attributes(text)
            for attribute in PROBED:
                right[attribute] += said.get(attribute) == truth[asins[i]].get(attribute)
        result[name] = {a: right[a] / max(len(records), 1) for a in PROBED}
        result[f"{name}_examples"] = texts[:3]
    return result
