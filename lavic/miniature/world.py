"""The miniature's copy of the synthetic world: every split's shipped candidate lists cut to
the preset's ``k`` with every ground truth kept, so every row of the table reads the same lists."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from lavic.miniature.preset import DOMAINS, Preset


def cut_list(ranked: Sequence[str], truths: Sequence[str], k: int) -> list[str]:
    """The shipped list's first ``k``, in its order, every ground truth kept: a truth the list
    missed takes the place of the last other candidate (the release's lists are unordered, so
    which ones stay is a fixed, label-blind rule; the ground truth is never moved to a chosen
    position)."""
    truths = [t for t in dict.fromkeys(truths)][:k]
    kept = list(dict.fromkeys(ranked))[:k]
    missing = [t for t in truths if t not in kept]
    for truth in missing:
        others = [i for i, c in enumerate(kept) if c not in truths]
        if len(kept) < k or not others:
            kept.append(truth)
        else:
            kept[others[-1]] = truth
    return kept


def cut_world(source: Path, out: Path, preset: Preset) -> Path:
    """``source`` with every split's ``candidates_*`` lists cut by :func:`cut_list` and the
    valid split cut to ``preset.valid_conversations`` per domain; everything else linked."""
    done = out / "cuts.json"
    if done.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name not in DOMAINS and not (out / entry.name).exists():
            (out / entry.name).symlink_to(entry.resolve())
    for domain in DOMAINS:
        (out / domain).mkdir(exist_ok=True)
        for split in ("train", "valid", "test"):
            rows = [json.loads(line) for line in
                    (source / domain / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
                    if line.strip()]
            if split == "valid":
                rows = rows[: preset.valid_conversations]
            for row in rows:
                for name in [n for n in row if n.startswith("candidates_")]:
                    row[name] = cut_list(row[name], row.get("gt_items") or [], preset.candidates)
            (out / domain / f"{split}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done.write_text(json.dumps({"k": preset.candidates,
                                "valid_conversations": preset.valid_conversations}) + "\n")
    return out
