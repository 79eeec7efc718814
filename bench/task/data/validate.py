"""``bench data validate DIR``: what a data directory holds, and what is wrong with it.

Structural errors (unparseable lines, missing required fields, non-list ASIN fields, no split
files) make the command exit non-zero; the rest are counts a researcher should know about
before trusting a number (ground truths outside the shipped candidates, items without title
or image, duplicate candidates, mojibake).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ftfy.badness import is_bad
from tabulate import tabulate

from bench.core.errors import BenchError
from bench.task.data.release import IMAGES_DIR, REQUIRED_FIELDS, load_meta, read_jsonl
from bench.task.data.schema import ASIN_RE, CANDIDATE_FIELDS, SPLITS
from bench.task.images import image_problem

ASIN_FIELDS = ("gt_items", "context_items", *CANDIDATE_FIELDS)


@dataclass
class SplitReport:
    domain: str
    split: str
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class ValidationReport:
    root: Path
    splits: list[SplitReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: what"
    items: Counter[str] = field(default_factory=Counter)
    first_corrupt: str = ""  # "file: problem" of the first corrupt image found

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        cols = ["conversations", "pairs", *(f"gt_not_in_{s}" for s in CANDIDATE_FIELDS.values()),
                "duplicate_candidates", "mojibake", "bad_lines"]
        head = ["domain", "split", *cols]
        rows = [[r.domain, r.split, *(r.counts[c] for c in cols)] for r in self.splits]
        lines = [tabulate(rows, head, tablefmt="plain")]
        lines.append(
            f"items referenced: {self.items['referenced']}, without title: "
            f"{self.items['no_title']}, without image: {self.items['no_image']}"
            + (f", corrupt image: {self.items['corrupt_image']}" if "corrupt_image" in self.items
               else "")
            + (f" (first: {self.first_corrupt})" if self.first_corrupt else "")
        )
        shown = self.errors[:20]
        lines += [f"error: {e}" for e in shown]
        if len(self.errors) > len(shown):
            lines.append(f"... and {len(self.errors) - len(shown)} more errors")
        lines.append("OK" if self.ok else f"{len(self.errors)} structural errors")
        return "\n".join(lines)


def validate(
    root: Path, images_dir: Path | None = None, *, decode_images: bool = False
) -> ValidationReport:
    if not root.is_dir():
        raise BenchError(f"{root} is not a directory", hint="pass the release's data/ folder")
    if images_dir is not None and not images_dir.is_dir():
        raise BenchError("the images folder is not a directory", where=str(images_dir),
                         hint="pass the folder holding {ASIN}_0.jpg files")
    report = ValidationReport(root)
    images = images_dir or root / IMAGES_DIR
    referenced: set[str] = set()
    for domain_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for split in SPLITS:
            path = domain_dir / f"{split}.jsonl"
            if path.is_dir():
                report.errors.append(f"{path}: a directory where a split file belongs")
            elif path.exists():
                sr = SplitReport(domain_dir.name, split)
                report.splits.append(sr)
                _check_split(path, sr, report, referenced)
    if not report.splits:
        report.errors.append(f"{root}: no {{domain}}/{{train,valid,test}}.jsonl files found")
    meta = load_meta(root)
    report.errors += [f"{where}: {code}: {msg}" for code, where, msg in meta.problems]
    report.items["referenced"] = len(referenced)
    if decode_images:
        report.items["corrupt_image"] = 0
    for asin in sorted(referenced):
        details = meta.records.get(asin)
        if not details or not str(details.get("title") or "").strip():
            report.items["no_title"] += 1
        image = images / f"{asin}_0.jpg"
        if not image.exists():
            report.items["no_image"] += 1
        elif decode_images and (problem := image_problem(image)):
            report.items["corrupt_image"] += 1
            report.first_corrupt = report.first_corrupt or f"{image}: {problem}"
    return report


def _check_split(path: Path, sr: SplitReport, report: ValidationReport, seen: set[str]) -> None:
    for line in read_jsonl(path):
        if line.non_utf8:
            report.errors.append(f"{line.where}: invalid UTF-8")
        if line.record is None:
            sr.counts["bad_lines"] += 1
            report.errors.append(f"{line.where}: {line.problem}")
            continue
        rec = line.record
        missing = [f for f in REQUIRED_FIELDS if f not in rec]
        if missing:
            sr.counts["bad_lines"] += 1
            report.errors.append(f"{line.where}: missing {', '.join(missing)}")
            continue
        if not isinstance(rec["context"], str):
            sr.counts["bad_lines"] += 1
            report.errors.append(f"{line.where}: context is {type(rec['context']).__name__}, "
                                 "not a string")
            continue
        bad = [f for f in ASIN_FIELDS if f in rec and not isinstance(rec[f], list)]
        if bad:
            sr.counts["bad_lines"] += 1
            report.errors.append(f"{line.where}: {', '.join(bad)} not a list")
            continue
        gts = [str(g) for g in rec["gt_items"]]
        sr.counts["conversations"] += 1
        sr.counts["pairs"] += len(gts)
        for f in ASIN_FIELDS:
            for asin in map(str, rec.get(f, [])):
                seen.add(asin)
                if not ASIN_RE.match(asin):
                    report.errors.append(f"{line.where}: {f} holds {asin!r}, not an ASIN")
        for field_name, short in CANDIDATE_FIELDS.items():
            cands = [str(c) for c in rec.get(field_name, [])]
            if not set(gts) & set(cands):
                sr.counts[f"gt_not_in_{short}"] += 1
            if len(set(cands)) != len(cands):
                sr.counts["duplicate_candidates"] += 1
        if isinstance(rec["context"], str) and is_bad(rec["context"]):
            sr.counts["mojibake"] += 1
